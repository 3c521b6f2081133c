klass('VM', create=True, destroy=True, hooks=('create', 'destroy', 'set'))
field('uuid', 'string', RO_RUNTIME)
field('allowed_operations', 'enum vm_operations set', RO_RUNTIME, default='{}')
field('current_operations', '(string -> enum vm_operations) map', RO_RUNTIME, default='{}')
field('name_label', 'string', RW, default='""')
field('name_description', 'string', RW, default='""')
field('power_state', 'enum vm_power_state', RO_CONSTRUCTOR, default='Halted')
field('user_version', 'int', RW)
field('is_a_template', 'bool', RW)
field('is_default_template', 'bool', RO_RUNTIME, default='false')
field('suspend_VDI', 'VDI ref', RO_CONSTRUCTOR, default='OpaqueRef:NULL', setter='generic', write_role='pool-operator')
field('resident_on', 'host ref', RO_RUNTIME)
field('scheduled_to_be_resident_on', 'host ref', RO_RUNTIME, default='OpaqueRef:NULL')
field('affinity', 'host ref', RW, write_role='vm-power-admin')
field('memory_overhead', 'int', RO_RUNTIME, default='0')
field('memory_target', 'int', RO_CONSTRUCTOR, default='0')
field('memory_static_max', 'int', RO_CONSTRUCTOR, setter='custom', write_role='vm-power-admin')
field('memory_dynamic_max', 'int', RO_CONSTRUCTOR, setter='custom', write_role='vm-power-admin')
field('memory_dynamic_min', 'int', RO_CONSTRUCTOR, setter='custom', write_role='vm-power-admin')
field('memory_static_min', 'int', RO_CONSTRUCTOR, setter='custom', write_role='vm-power-admin')
field('VCPUs_params', '(string -> string) map', RW)
field('VCPUs_max', 'int', RO_CONSTRUCTOR, setter='custom')
field('VCPUs_at_startup', 'int', RO_CONSTRUCTOR, setter='custom')
field('actions_after_softreboot', 'enum on_softreboot_behavior', RW, default='soft_reboot')
field('actions_after_shutdown', 'enum on_normal_exit', RW)
field('actions_after_reboot', 'enum on_normal_exit', RW)
field('actions_after_crash', 'enum on_crash_behaviour', RO_CONSTRUCTOR, setter='generic')
field('consoles', 'console ref set', RO_RUNTIME, inverse='console.VM')
field('VIFs', 'VIF ref set', RO_RUNTIME, inverse='VIF.VM')
field('VBDs', 'VBD ref set', RO_RUNTIME, inverse='VBD.VM')
field('PV_bootloader', 'string', RW)
field('PV_kernel', 'string', RW)
field('PV_ramdisk', 'string', RW)
field('PV_args', 'string', RW)
field('PV_bootloader_args', 'string', RW)
field('PV_legacy_args', 'string', RW)
field('HVM_boot_policy', 'string', RO_CONSTRUCTOR, setter='generic')
field('HVM_boot_params', '(string -> string) map', RW)
field('HVM_shadow_multiplier', 'float', RO_CONSTRUCTOR, default='1.', setter='generic', write_role='vm-power-admin')
field('platform', '(string -> string) map', RW)
field('other_config', '(string -> string) map', RW)
field('domid', 'int', RO_RUNTIME)
field('domarch', 'string', RO_RUNTIME)
field('last_boot_CPU_flags', '(string -> string) map', RO_CONSTRUCTOR, default='{}')
field('is_control_domain', 'bool', RO_RUNTIME)
field('metrics', 'VM_metrics ref', RO_RUNTIME)
field('guest_metrics', 'VM_guest_metrics ref', RO_RUNTIME)
field('last_booted_record', 'string', RO_CONSTRUCTOR, default='""')
field('recommendations', 'string', RW)
field('xenstore_data', '(string -> string) map', RW, default='{}')
field('ha_always_run', 'bool', RO_CONSTRUCTOR, default='false', setter='generic', write_role='pool-operator')
field('ha_restart_priority', 'string', RO_CONSTRUCTOR, default='""', setter='generic', write_role='pool-operator')
field('is_a_snapshot', 'bool', RO_RUNTIME, default='false')
field('snapshot_of', 'VM ref', RO_RUNTIME, default='Null')
field('snapshots', 'VM ref set', RO_RUNTIME, inverse='VM.snapshot_of')
field('snapshot_time', 'datetime', RO_RUNTIME, default='19700101T00:00:00Z')
field('transportable_snapshot_id', 'string', RO_RUNTIME, default='""')
field('tags', 'string set', RW, default='{}', write_role='vm-operator')
field('blocked_operations', '(enum vm_operations -> string) map', RW, default='{}')
field('snapshot_info', '(string -> string) map', RO_RUNTIME, default='{}')
field('snapshot_metadata', 'string', RO_RUNTIME, default='""')
field('parent', 'VM ref', RO_RUNTIME, default='Null')
field('children', 'VM ref set', RO_RUNTIME, inverse='VM.parent')
field('bios_strings', '(string -> string) map', RO_RUNTIME, default='{}', setter='custom')
field('is_vmss_snapshot', 'bool', RO_CONSTRUCTOR, default='false')
field('appliance', 'VM_appliance ref', RO_CONSTRUCTOR, default='OpaqueRef:NULL', setter='generic', write_role='pool-operator')
field('start_delay', 'int', RO_CONSTRUCTOR, default='0', setter='custom', write_role='pool-operator')
field('shutdown_delay', 'int', RO_CONSTRUCTOR, default='0', setter='custom', write_role='pool-operator')
field('order', 'int', RO_CONSTRUCTOR, default='0', setter='custom', write_role='pool-operator')
field('suspend_SR', 'SR ref', RW, default='OpaqueRef:NULL')
field('version', 'int', RO_CONSTRUCTOR, default='0')
field('generation_id', 'string', RO_CONSTRUCTOR, default='"0:0"')
field('hardware_platform_version', 'int', RW, default='0')
field('has_vendor_device', 'bool', RO_CONSTRUCTOR, default='false', setter='generic')
field('requires_reboot', 'bool', RO_RUNTIME, default='false')
field('reference_label', 'string', RO_CONSTRUCTOR, default='""')
field('domain_type', 'enum domain_type', RO_CONSTRUCTOR, default='unspecified', setter='generic')
field('NVRAM', '(string -> string) map', RO_CONSTRUCTOR, default='{}', setter='generic')

message('set_memory', 'void', ('VM ref', 'self'), ('int', 'value'), role='vm-power-admin')
message('set_memory_limits', 'void', ('VM ref', 'self'), ('int', 'static_min'),
        ('int', 'static_max'), ('int', 'dynamic_min'), ('int', 'dynamic_max'),
        role='vm-power-admin')
message('set_memory_static_range', 'void', ('VM ref', 'self'), ('int', 'min'), ('int', 'max'),
        role='vm-power-admin')
message('set_memory_dynamic_range', 'void', ('VM ref', 'self'), ('int', 'min'), ('int', 'max'),
        role='vm-power-admin')
# Power operations (ops/vm_lifecycle.c).
message('start', 'void', ('VM ref', 'vm'), ('bool', 'start_paused'), ('bool', 'force'),
        role='vm-operator')
message('start_on', 'void', ('VM ref', 'vm'), ('host ref', 'host'), ('bool', 'start_paused'),
        ('bool', 'force'), role='vm-power-admin')
message('clean_shutdown', 'void', ('VM ref', 'vm'), role='vm-operator')
message('hard_shutdown', 'void', ('VM ref', 'vm'), role='vm-operator')
message('shutdown', 'void', ('VM ref', 'vm'), role='vm-operator')
message('clean_reboot', 'void', ('VM ref', 'vm'), role='vm-operator')
message('hard_reboot', 'void', ('VM ref', 'vm'), role='vm-operator')
message('suspend', 'void', ('VM ref', 'vm'), role='vm-operator')
message('resume', 'void', ('VM ref', 'vm'), ('bool', 'start_paused'), ('bool', 'force'),
        role='vm-operator')
message('resume_on', 'void', ('VM ref', 'vm'), ('host ref', 'host'), ('bool', 'start_paused'),
        ('bool', 'force'), role='vm-power-admin')
message('pause', 'void', ('VM ref', 'vm'), role='vm-operator')
message('unpause', 'void', ('VM ref', 'vm'), role='vm-operator')
message('power_state_reset', 'void', ('VM ref', 'vm'), role='vm-power-admin')
message('set_VCPUs_number_live', 'void', ('VM ref', 'self'), ('int', 'nvcpu'),
        role='vm-operator')
# Templates, installation and BIOS strings (ops/vm_install.c).
message('provision', 'void', ('VM ref', 'vm'), role='vm-admin')
message('clone', 'VM ref', ('VM ref', 'vm'), ('string', 'new_name'), role='vm-admin')
message('copy', 'VM ref', ('VM ref', 'vm'), ('string', 'new_name'), ('SR ref', 'sr'),
        role='vm-admin')
# Snapshots, checkpoints and reverts (ops/vm_snapshot.c).
message('snapshot', 'VM ref', ('VM ref', 'vm'), ('string', 'new_name'),
        ('VDI ref set', 'ignore_vdis'), defaults={'ignore_vdis': '{}'}, role='vm-power-admin')
message('snapshot_with_quiesce', 'VM ref', ('VM ref', 'vm'), ('string', 'new_name'),
        role='vm-power-admin')
message('checkpoint', 'VM ref', ('VM ref', 'vm'), ('string', 'new_name'), role='vm-power-admin')
message('revert', 'void', ('VM ref', 'snapshot'), role='vm-power-admin')
message('copy_bios_strings', 'void', ('VM ref', 'vm'), ('host ref', 'host'), role='vm-admin')
# hyperxe extension for tests: plays the simulated guest's part (only with
# hyperxed --vmm sim).
message('sim_inject', 'void', ('VM ref', 'vm'), ('string', 'what'), role='pool-admin',
        async_=False, hidden=True)
# Import of an XVA (or a disk image) from a URL the server fetches (ops/vm_import.c).
message('import', 'VM ref set', ('string', 'url'), ('SR ref', 'sr'), ('bool', 'full_restore'),
        ('bool', 'force'), role='vm-admin')
message('get_allowed_VBD_devices', 'string set', ('VM ref', 'vm'), role='read-only',
        async_=False)
message('get_allowed_VIF_devices', 'string set', ('VM ref', 'vm'), role='read-only',
        async_=False)

cli('uuid', 'name-label', 'name-description', 'user-version', 'is-a-template',
    'is-default-template', 'is-a-snapshot', 'snapshot-of', 'snapshots!p', 'snapshot-time',
    'transportable-snapshot-id!h', 'snapshot-info!p', 'parent', 'children!p', 'is-control-domain',
    'power-state', 'memory-actual=metrics.memory_actual', 'memory-target!e', 'memory-overhead',
    'memory-static-max', 'memory-dynamic-max', 'memory-dynamic-min', 'memory-static-min',
    'suspend-VDI-uuid=suspend_VDI', 'suspend-SR-uuid=suspend_SR', 'VCPUs-params', 'VCPUs-max',
    'VCPUs-at-startup', 'actions-after-shutdown', 'actions-after-softreboot',
    'actions-after-reboot', 'actions-after-crash', 'console-uuids=consoles', 'hvm=@vm_hvm',
    'nomigrate=metrics.nomigrate!h', 'nested-virt=metrics.nested_virt!h', 'platform',
    'allowed-operations', 'current-operations', 'blocked-operations',
    'allowed-VBD-devices=@vm_allowed_vbd_devices!eS', 'allowed-VIF-devices=@vm_allowed_vif_devices!eS',
    'possible-hosts=@vm_possible_hosts!e', 'domain-type', 'current-domain-type=metrics.current_domain_type',
    'HVM-boot-policy', 'HVM-boot-params', 'HVM-shadow-multiplier', 'NVRAM!h', 'PV-kernel',
    'PV-ramdisk', 'PV-args', 'PV-legacy-args', 'PV-bootloader', 'PV-bootloader-args',
    'last-boot-CPU-flags!p', 'last-boot-record=last_booted_record!e', 'resident-on', 'affinity',
    'other-config', 'dom-id=domid', 'recommendations!r', 'xenstore-data', 'ha-always-run!d',
    'ha-restart-priority', 'start-time=metrics.start_time', 'install-time=metrics.install_time',
    'VCPUs-number=metrics.VCPUs_number', 'VCPUs-utilisation=metrics.VCPUs_utilisation!e',
    'os-version=guest_metrics.os_version', 'PV-drivers-version=guest_metrics.PV_drivers_version',
    'PV-drivers-up-to-date=guest_metrics.PV_drivers_up_to_date!d',
    'memory=guest_metrics.memory', 'disks=guest_metrics.disks', 'VBDs',
    'networks=guest_metrics.networks', 'PV-drivers-detected=guest_metrics.PV_drivers_detected',
    'other=guest_metrics.other', 'live=guest_metrics.live',
    'guest-metrics-last-updated=guest_metrics.last_updated',
    'can-use-hotplug-vbd=guest_metrics.can_use_hotplug_vbd',
    'can-use-hotplug-vif=guest_metrics.can_use_hotplug_vif', 'tags', 'appliance',
    'is-vmss-snapshot', 'start-delay', 'shutdown-delay', 'order', 'version', 'generation-id',
    'hardware-platform-version!r', 'has-vendor-device', 'requires-reboot', 'reference-label',
    'bios-strings!r')
cli_view('vm', filters='is-a-template=false', columns='uuid,name-label,power-state')
cli_view('template', filters='is-a-template=true,is-a-snapshot=false',
         columns='uuid,name-label,name-description')
cli_view('snapshot', filters='is-a-snapshot=true',
         columns='uuid,name-label,name-description,is-vmss-snapshot')
