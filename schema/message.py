klass('message', create=False, destroy=False)
field('uuid', 'string', RO_RUNTIME)
field('name', 'string', RO_RUNTIME)
field('priority', 'int', RO_RUNTIME)
field('cls', 'enum cls', RO_RUNTIME)
field('obj_uuid', 'string', RO_RUNTIME)
field('timestamp', 'datetime', RO_RUNTIME)
field('body', 'string', RO_RUNTIME)

message('create', 'message ref', ('string', 'name'), ('int', 'priority'), ('enum cls', 'cls'),
        ('string', 'obj_uuid'), ('string', 'body'), role='pool-operator', async_=False)
message('destroy', 'void', ('message ref', 'self'), role='pool-operator', async_=False)
message('get_since', '(message ref -> message record) map', ('datetime', 'since'),
        role='read-only', async_=False)
message('get', '(message ref -> message record) map', ('enum cls', 'cls'), ('string', 'obj_uuid'),
        ('datetime', 'since'), role='read-only', async_=False)

cli('uuid', 'name', 'priority', 'class=cls', 'obj-uuid', 'timestamp', 'body')
cli_view('message')
