klass('SR', create=False, destroy=True, hooks=('destroy',), destroy_role='pool-operator')
field('uuid', 'string', RO_RUNTIME)
field('name_label', 'string', RO_CONSTRUCTOR, default='""', setter='generic', write_role='pool-operator')
field('name_description', 'string', RO_CONSTRUCTOR, default='""', setter='generic', write_role='pool-operator')
field('allowed_operations', 'enum storage_operations set', RO_RUNTIME, default='{}')
field('current_operations', '(string -> enum storage_operations) map', RO_RUNTIME, default='{}')
field('VDIs', 'VDI ref set', RO_RUNTIME, inverse='VDI.SR')
field('PBDs', 'PBD ref set', RO_RUNTIME, inverse='PBD.SR')
field('virtual_allocation', 'int', RO_RUNTIME)
field('physical_utilisation', 'int', RO_RUNTIME)
field('physical_size', 'int', RO_CONSTRUCTOR, setter='generic', write_role='pool-operator')
field('type', 'string', RO_CONSTRUCTOR)
field('content_type', 'string', RO_CONSTRUCTOR)
field('shared', 'bool', RO_RUNTIME, setter='generic', write_role='pool-operator')
field('other_config', '(string -> string) map', RW, write_role='pool-operator')
field('tags', 'string set', RW, default='{}', write_role='vm-operator')
field('sm_config', '(string -> string) map', RW, default='{}', write_role='pool-operator')

message('create', 'SR ref', ('host ref', 'host'), ('(string -> string) map', 'device_config'),
        ('int', 'physical_size'), ('string', 'name_label'), ('string', 'name_description'),
        ('string', 'type'), ('string', 'content_type'), ('bool', 'shared'),
        ('(string -> string) map', 'sm_config'), defaults={'sm_config': '{}'},
        role='pool-operator')
message('introduce', 'SR ref', ('string', 'uuid'), ('string', 'name_label'),
        ('string', 'name_description'), ('string', 'type'), ('string', 'content_type'),
        ('bool', 'shared'), ('(string -> string) map', 'sm_config'), defaults={'sm_config': '{}'},
        role='pool-operator')
message('forget', 'void', ('SR ref', 'sr'), role='pool-operator')
message('scan', 'void', ('SR ref', 'sr'), role='vm-power-admin')
message('update', 'void', ('SR ref', 'sr'), role='vm-power-admin')
message('get_supported_types', 'string set', role='read-only', async_=False)

cli('uuid', 'name-label', 'name-description', 'host=@sr_host', 'allowed-operations',
    'current-operations', 'VDIs', 'PBDs', 'virtual-allocation', 'physical-utilisation',
    'physical-size!r', 'type', 'content-type', 'shared', 'other-config', 'sm-config!r', 'tags')
cli_view('sr', columns='uuid,name-label,name-description,host,type,content-type')
