klass('VBD', create=True, destroy=True, hooks=('create', 'destroy', 'set'))
field('uuid', 'string', RO_RUNTIME)
field('allowed_operations', 'enum vbd_operations set', RO_RUNTIME, default='{}')
field('current_operations', '(string -> enum vbd_operations) map', RO_RUNTIME, default='{}')
field('VM', 'VM ref', RO_CONSTRUCTOR)
field('VDI', 'VDI ref', RO_CONSTRUCTOR)
field('device', 'string', RO_CONSTRUCTOR, default='""')
field('userdevice', 'string', RW)
field('bootable', 'bool', RW)
field('mode', 'enum vbd_mode', RO_CONSTRUCTOR, setter='generic')
field('type', 'enum vbd_type', RW)
field('unpluggable', 'bool', RW, default='true')
field('storage_lock', 'bool', RO_RUNTIME)
field('empty', 'bool', RO_CONSTRUCTOR)
field('other_config', '(string -> string) map', RW)
field('currently_attached', 'bool', RO_CONSTRUCTOR, default='false')
field('status_code', 'int', RO_RUNTIME)
field('status_detail', 'string', RO_RUNTIME)
field('runtime_properties', '(string -> string) map', RO_RUNTIME)
field('qos_algorithm_type', 'string', RW)
field('qos_algorithm_params', '(string -> string) map', RW)
field('qos_supported_algorithms', 'string set', RO_RUNTIME)

# Devices of running VMs are plugged and unplugged at once (ops/vbd.c).
message('plug', 'void', ('VBD ref', 'self'), role='vm-admin')
message('unplug', 'void', ('VBD ref', 'self'), role='vm-admin')
message('unplug_force', 'void', ('VBD ref', 'self'), role='vm-admin')
message('insert', 'void', ('VBD ref', 'vbd'), ('VDI ref', 'vdi'), role='vm-operator')
message('eject', 'void', ('VBD ref', 'vbd'), role='vm-operator')

cli('uuid', 'vm-uuid=VM.uuid', 'vm-name-label=VM.name_label', 'vdi-uuid=VDI.uuid',
    'vdi-name-label=VDI.name_label', 'allowed-operations', 'current-operations', 'empty',
    'device', 'userdevice', 'bootable', 'mode', 'type', 'unpluggable', 'currently-attached',
    'storage-lock', 'status-code', 'status-detail', 'qos_algorithm_type',
    'qos_algorithm_params', 'qos_supported_algorithms', 'other-config')
cli_view('vbd', columns='uuid,vm-uuid,vm-name-label,vdi-uuid,empty,device')
