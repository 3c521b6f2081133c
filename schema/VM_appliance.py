klass('VM_appliance', create=True, destroy=True)
field('uuid', 'string', RO_RUNTIME)
field('name_label', 'string', RW, default='""', write_role='pool-operator')
field('name_description', 'string', RW, default='""', write_role='pool-operator')
field('allowed_operations', 'enum vm_appliance_operation set', RO_RUNTIME, default='{}')
field('current_operations', '(string -> enum vm_appliance_operation) map', RO_RUNTIME, default='{}')
field('VMs', 'VM ref set', RO_RUNTIME, inverse='VM.appliance')

cli('uuid', 'name-label', 'name-description', 'VMs', 'allowed-operations',
    'current-operations')
cli_view('appliance')
