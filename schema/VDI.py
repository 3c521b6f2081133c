klass('VDI', create=True, destroy=True, hooks=('create', 'destroy', 'set'))
field('uuid', 'string', RO_RUNTIME)
field('name_label', 'string', RO_CONSTRUCTOR, default='""', setter='generic')
field('name_description', 'string', RO_CONSTRUCTOR, default='""', setter='generic')
field('allowed_operations', 'enum vdi_operations set', RO_RUNTIME, default='{}')
field('current_operations', '(string -> enum vdi_operations) map', RO_RUNTIME, default='{}')
field('SR', 'SR ref', RO_CONSTRUCTOR)
field('VBDs', 'VBD ref set', RO_RUNTIME, inverse='VBD.VDI')
field('virtual_size', 'int', RO_CONSTRUCTOR)
field('physical_utilisation', 'int', RO_RUNTIME)
field('type', 'enum vdi_type', RO_CONSTRUCTOR)
field('sharable', 'bool', RO_CONSTRUCTOR, setter='generic')
field('read_only', 'bool', RO_CONSTRUCTOR, setter='generic')
field('other_config', '(string -> string) map', RW)
field('storage_lock', 'bool', RO_RUNTIME)
field('location', 'string', RO_RUNTIME, default='""')
field('managed', 'bool', RO_RUNTIME)
field('missing', 'bool', RO_RUNTIME)
field('parent', 'VDI ref', RO_RUNTIME)
field('xenstore_data', '(string -> string) map', RW, default='{}')
field('sm_config', '(string -> string) map', RW, default='{}')
field('is_a_snapshot', 'bool', RO_RUNTIME, default='false')
field('snapshot_of', 'VDI ref', RO_RUNTIME, default='Null')
field('snapshots', 'VDI ref set', RO_RUNTIME, inverse='VDI.snapshot_of')
field('snapshot_time', 'datetime', RO_RUNTIME, default='19700101T00:00:00Z')
field('tags', 'string set', RW, default='{}', write_role='vm-operator')
field('allow_caching', 'bool', RO_RUNTIME, default='false', setter='generic', write_role='vm-admin')
field('on_boot', 'enum on_boot', RO_RUNTIME, default='persist', setter='custom', write_role='vm-admin')
field('is_tools_iso', 'bool', RO_RUNTIME, default='false')

message('clone', 'VDI ref', ('VDI ref', 'vdi'), ('(string -> string) map', 'driver_params'),
        defaults={'driver_params': '{}'}, role='vm-admin')
message('snapshot', 'VDI ref', ('VDI ref', 'vdi'), ('(string -> string) map', 'driver_params'),
        defaults={'driver_params': '{}'}, role='vm-admin')
message('copy', 'VDI ref', ('VDI ref', 'vdi'), ('SR ref', 'sr'), ('VDI ref', 'base_vdi'),
        ('VDI ref', 'into_vdi'), defaults={'base_vdi': 'OpaqueRef:NULL', 'into_vdi': 'OpaqueRef:NULL'},
        role='vm-admin')
message('resize', 'void', ('VDI ref', 'vdi'), ('int', 'size'), role='vm-admin')
message('resize_online', 'void', ('VDI ref', 'vdi'), ('int', 'size'), role='vm-admin')
message('forget', 'void', ('VDI ref', 'vdi'), role='vm-admin')
message('update', 'void', ('VDI ref', 'vdi'), role='vm-admin')
message('introduce', 'VDI ref', ('string', 'uuid'), ('string', 'name_label'),
        ('string', 'name_description'), ('SR ref', 'SR'), ('enum vdi_type', 'type'),
        ('bool', 'sharable'), ('bool', 'read_only'), ('(string -> string) map', 'other_config'),
        ('string', 'location'), ('(string -> string) map', 'xenstore_data'),
        ('(string -> string) map', 'sm_config'), ('bool', 'managed'), ('int', 'virtual_size'),
        ('int', 'physical_utilisation'), ('string', 'metadata_of_pool'), ('bool', 'is_a_snapshot'),
        ('datetime', 'snapshot_time'), ('VDI ref', 'snapshot_of'),
        defaults={'managed': 'true', 'virtual_size': '0', 'physical_utilisation': '0',
                  'metadata_of_pool': '""', 'is_a_snapshot': 'false',
                  'snapshot_time': '19700101T00:00:00Z', 'snapshot_of': 'OpaqueRef:NULL'},
        role='vm-admin')

cli('uuid', 'name-label', 'name-description', 'is-a-snapshot', 'snapshot-of', 'snapshots!p',
    'snapshot-time', 'allowed-operations', 'current-operations', 'sr-uuid=SR.uuid',
    'sr-name-label=SR.name_label', 'vbd-uuids=VBDs', 'virtual-size', 'physical-utilisation',
    'location', 'type', 'sharable!r', 'read-only!r', 'storage-lock', 'managed', 'parent!d',
    'missing', 'is-tools-iso', 'other-config', 'xenstore-data!r', 'sm-config!r', 'on-boot',
    'allow-caching', 'tags')
cli_view('vdi', columns='uuid,name-label,name-description,sr-uuid,virtual-size,sharable,read-only')
