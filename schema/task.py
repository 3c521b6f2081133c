klass('task', create=False, destroy=False)
field('uuid', 'string', RO_RUNTIME)
field('name_label', 'string', RO_RUNTIME, default='""')
field('name_description', 'string', RO_RUNTIME, default='""')
field('allowed_operations', 'enum task_allowed_operations set', RO_RUNTIME, default='{}')
field('current_operations', '(string -> enum task_allowed_operations) map', RO_RUNTIME, default='{}')
field('created', 'datetime', RO_RUNTIME)
field('finished', 'datetime', RO_RUNTIME)
field('status', 'enum task_status_type', RO_RUNTIME)
field('resident_on', 'host ref', RO_RUNTIME)
field('progress', 'float', RO_RUNTIME)
field('type', 'string', RO_RUNTIME)
field('result', 'string', RO_RUNTIME)
field('error_info', 'string set', RO_RUNTIME)
field('other_config', '(string -> string) map', RW, default='{}', write_role='pool-operator')
field('subtask_of', 'task ref', RO_RUNTIME, default='Null')
field('subtasks', 'task ref set', RO_RUNTIME, inverse='task.subtask_of')
field('backtrace', 'string', RO_RUNTIME, default='"()"')

message('create', 'task ref', ('string', 'label'), ('string', 'description'),
        role='read-only', async_=False, layer='api')
message('destroy', 'void', ('task ref', 'self'), role='read-only', async_=False, layer='api')
message('cancel', 'void', ('task ref', 'task'), role='read-only', async_=False, layer='api')
message('set_status', 'void', ('task ref', 'self'), ('enum task_status_type', 'value'),
        role='read-only', async_=False, layer='api')
message('set_progress', 'void', ('task ref', 'self'), ('float', 'value'),
        role='read-only', async_=False, layer='api')

cli('uuid', 'name-label', 'name-description', 'subtask_of', 'subtasks!p', 'resident-on',
    'status', 'progress', 'type', 'result', 'created', 'finished', 'error_info!p',
    'allowed_operations!p', 'current_operations!p', 'other-config')
cli_view('task', columns='uuid,name-label,name-description,status,progress')
