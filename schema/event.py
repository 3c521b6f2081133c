# The event class: no objects are stored; it only carries the event messages.
klass('event', persist=False, implicit=False)
field('uuid', 'string', RO_RUNTIME)
field('id', 'int', RO_RUNTIME)
field('timestamp', 'datetime', RO_RUNTIME)
field('class', 'string', RO_RUNTIME)
field('operation', 'enum event_operation', RO_RUNTIME)
field('ref', 'string', RO_RUNTIME)
field('obj_uuid', 'string', RO_RUNTIME)

message('register', 'void', ('string set', 'classes'), role='read-only', async_=False, layer='api')
message('unregister', 'void', ('string set', 'classes'), role='read-only', async_=False,
        layer='api')
message('next', 'struct set', role='read-only', async_=False, layer='api')
message('from', 'struct', ('string set', 'classes'), ('string', 'token'), ('float', 'timeout'),
        role='read-only', async_=False, layer='api')
message('get_current_id', 'int', role='read-only', async_=False, layer='api')
message('inject', 'string', ('string', 'class'), ('string', 'ref'), role='read-only',
        async_=False, layer='api')
