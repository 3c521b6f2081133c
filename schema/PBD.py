klass('PBD', create=True, destroy=True, hooks=('create', 'destroy'), create_role='pool-operator', destroy_role='pool-operator')
field('uuid', 'string', RO_RUNTIME)
field('host', 'host ref', RO_CONSTRUCTOR)
field('SR', 'SR ref', RO_CONSTRUCTOR)
field('device_config', '(string -> string) map', RO_CONSTRUCTOR, setter='generic', write_role='pool-operator')
field('currently_attached', 'bool', RO_RUNTIME)
field('other_config', '(string -> string) map', RW, default='{}', write_role='pool-operator')

message('plug', 'void', ('PBD ref', 'self'), role='pool-operator')
message('unplug', 'void', ('PBD ref', 'self'), role='pool-operator')

cli('uuid', 'host=host.uuid!d', 'host-uuid=host.uuid', 'host-name-label=host.name_label',
    'sr-uuid=SR.uuid', 'sr-name-label=SR.name_label', 'device-config!r', 'currently-attached',
    'other-config')
cli_view('pbd', columns='uuid,host-uuid,sr-uuid,device-config,currently-attached')
