klass('session', create=False, destroy=False, persist=False)
field('uuid', 'string', RO_RUNTIME)
field('this_host', 'host ref', RO_RUNTIME)
field('this_user', 'user ref', RO_RUNTIME)
field('last_active', 'datetime', RO_RUNTIME)
field('other_config', '(string -> string) map', RW, default='{}', write_role='pool-admin')
field('is_local_superuser', 'bool', RO_RUNTIME, default='false')
field('validation_time', 'datetime', RO_RUNTIME, default='19700101T00:00:00Z')
field('tasks', 'task ref set', RO_RUNTIME)
field('originator', 'string', RO_RUNTIME, default='""')

message('login_with_password', 'session ref', ('string', 'uname'), ('string', 'pwd'),
        ('string', 'version'), ('string', 'originator'),
        defaults={'version': '""', 'originator': '""'},
        role='read-only', async_=False, session=False, layer='api')
message('logout', 'void', role='read-only', async_=False, layer='api')
message('local_logout', 'void', role='pool-admin', async_=False, layer='api')
message('change_password', 'void', ('string', 'old_pwd'), ('string', 'new_pwd'),
        role='read-only', async_=False, layer='api')
