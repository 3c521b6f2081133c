klass('host', create=False, destroy=True)
field('uuid', 'string', RO_RUNTIME)
field('name_label', 'string', RW, default='""', write_role='pool-operator')
field('name_description', 'string', RW, default='""', write_role='pool-operator')
field('memory_overhead', 'int', RO_RUNTIME, default='0')
field('allowed_operations', 'enum host_allowed_operations set', RO_RUNTIME, default='{}')
field('current_operations', '(string -> enum host_allowed_operations) map', RO_RUNTIME, default='{}')
field('API_version_major', 'int', RO_RUNTIME)
field('API_version_minor', 'int', RO_RUNTIME)
field('API_version_vendor', 'string', RO_RUNTIME)
field('API_version_vendor_implementation', '(string -> string) map', RO_RUNTIME)
field('enabled', 'bool', RO_RUNTIME)
field('software_version', '(string -> string) map', RO_CONSTRUCTOR)
field('other_config', '(string -> string) map', RW, write_role='pool-operator')
field('capabilities', 'string set', RO_CONSTRUCTOR)
field('cpu_configuration', '(string -> string) map', RO_RUNTIME)
field('sched_policy', 'string', RO_RUNTIME)
field('supported_bootloaders', 'string set', RO_RUNTIME)
field('resident_VMs', 'VM ref set', RO_RUNTIME, inverse='VM.resident_on')
field('logging', '(string -> string) map', RW, write_role='pool-operator')
field('PIFs', 'PIF ref set', RO_RUNTIME, inverse='PIF.host')
field('suspend_image_sr', 'SR ref', RW, write_role='pool-operator')
field('crash_dump_sr', 'SR ref', RW, write_role='pool-operator')
field('PBDs', 'PBD ref set', RO_RUNTIME, inverse='PBD.host')
field('host_CPUs', 'host_cpu ref set', RO_RUNTIME, inverse='host_cpu.host')
field('cpu_info', '(string -> string) map', RO_RUNTIME, default='{}')
field('hostname', 'string', RW, write_role='pool-operator')
field('address', 'string', RW, write_role='pool-operator')
field('metrics', 'host_metrics ref', RO_RUNTIME)
field('license_params', '(string -> string) map', RO_RUNTIME)
field('tags', 'string set', RW, default='{}', write_role='vm-operator')
field('edition', 'string', RO_RUNTIME, default='""')
field('bios_strings', '(string -> string) map', RO_RUNTIME, default='{}')
field('chipset_info', '(string -> string) map', RO_RUNTIME, default='{}')
field('guest_VCPUs_params', '(string -> string) map', RW, default='{}', write_role='pool-operator')
field('virtual_hardware_platform_versions', 'int set', RO_RUNTIME, default='{0}')
field('control_domain', 'VM ref', RO_RUNTIME, default='OpaqueRef:NULL')

cli('uuid', 'name-label', 'name-description', 'allowed-operations', 'current-operations',
    'enabled', 'API-version-major', 'API-version-minor', 'API-version-vendor',
    'API-version-vendor-implementation', 'logging', 'suspend-image-sr-uuid=suspend_image_sr',
    'crash-dump-sr-uuid=crash_dump_sr', 'software-version', 'capabilities', 'other-config',
    'cpu_info', 'chipset-info', 'hostname!r', 'address!r', 'supported-bootloaders',
    'memory-overhead', 'memory-total=metrics.memory_total', 'memory-free=metrics.memory_free',
    'memory-free-computed=@host_memory_free_computed!e', 'host-metrics-live=metrics.live',
    'edition', 'tags', 'guest_VCPUs_params', 'virtual-hardware-platform-versions',
    'control-domain-uuid=control_domain', 'resident-vms=resident_VMs')
cli_view('host', columns='uuid,name-label,name-description')
