klass('PIF', create=False, destroy=True)
field('uuid', 'string', RO_RUNTIME)
field('device', 'string', RO_CONSTRUCTOR)
field('network', 'network ref', RO_CONSTRUCTOR)
field('host', 'host ref', RO_CONSTRUCTOR)
field('MAC', 'string', RO_CONSTRUCTOR)
field('MTU', 'int', RO_CONSTRUCTOR)
field('VLAN', 'int', RO_CONSTRUCTOR)
field('physical', 'bool', RO_RUNTIME, default='false')
field('currently_attached', 'bool', RO_RUNTIME, default='true')
field('ip_configuration_mode', 'enum ip_configuration_mode', RO_RUNTIME, default='None')
field('IP', 'string', RO_RUNTIME, default='""')
field('netmask', 'string', RO_RUNTIME, default='""')
field('gateway', 'string', RO_RUNTIME, default='""')
field('DNS', 'string', RO_RUNTIME, default='""')
field('management', 'bool', RO_RUNTIME, default='false')
field('other_config', '(string -> string) map', RW, default='{}', write_role='pool-operator')

cli('uuid', 'device', 'MAC', 'physical', 'currently-attached', 'MTU', 'VLAN', 'management',
    'network-uuid=network.uuid', 'network-name-label=network.name_label',
    'host-uuid=host.uuid', 'host-name-label=host.name_label',
    'IP-configuration-mode=ip_configuration_mode', 'IP', 'netmask', 'gateway', 'DNS',
    'other-config')
cli_view('pif', columns='uuid,device,MAC,currently-attached,VLAN,network-uuid')
