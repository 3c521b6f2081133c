klass('pool', create=False, destroy=False)
field('uuid', 'string', RO_RUNTIME)
field('name_label', 'string', RW, write_role='pool-operator')
field('name_description', 'string', RW, write_role='pool-operator')
field('master', 'host ref', RO_RUNTIME)
field('default_SR', 'SR ref', RW, write_role='pool-operator')
field('suspend_image_SR', 'SR ref', RW, write_role='pool-operator')
field('crash_dump_SR', 'SR ref', RW, write_role='pool-operator')
field('other_config', '(string -> string) map', RW, write_role='pool-operator')
field('ha_enabled', 'bool', RO_RUNTIME, default='false')
field('ha_configuration', '(string -> string) map', RO_RUNTIME, default='{}')
field('ha_statefiles', 'string set', RO_RUNTIME, default='{}')
field('ha_host_failures_to_tolerate', 'int', RO_RUNTIME, default='0')
field('ha_plan_exists_for', 'int', RO_RUNTIME, default='0')
field('ha_allow_overcommit', 'bool', RW, default='false', write_role='pool-operator')
field('ha_overcommitted', 'bool', RO_RUNTIME, default='false')
field('tags', 'string set', RW, default='{}', write_role='vm-operator')
field('gui_config', '(string -> string) map', RW, default='{}', write_role='vm-operator')
field('restrictions', '(string -> string) map', RO_RUNTIME, default='{}')
field('ha_cluster_stack', 'string', RO_RUNTIME, default='""')
field('allowed_operations', 'enum pool_allowed_operations set', RO_RUNTIME, default='{}')
field('current_operations', '(string -> enum pool_allowed_operations) map', RO_RUNTIME, default='{}')
field('cpu_info', '(string -> string) map', RO_RUNTIME, default='{}')
field('policy_no_vendor_device', 'bool', RW, default='false', write_role='pool-operator')
field('live_patching_disabled', 'bool', RW, default='false', write_role='pool-operator')

cli('uuid', 'name-label', 'name-description', 'master', 'default-SR', 'crash-dump-SR',
    'suspend-image-SR', 'supported-sr-types=@pool_supported_sr_types!e', 'other-config',
    'allowed-operations', 'current-operations', 'ha-enabled', 'ha-configuration!p',
    'ha-statefiles!p', 'ha-host-failures-to-tolerate', 'ha-plan-exists-for',
    'ha-allow-overcommit', 'ha-overcommitted', 'gui-config', 'restrictions!p', 'tags',
    'ha-cluster-stack', 'cpu_info', 'policy-no-vendor-device', 'live-patching-disabled')
cli_view('pool', columns='uuid,name-label,name-description,master,default-SR')
