klass('console', create=True, destroy=True)
field('uuid', 'string', RO_RUNTIME)
field('protocol', 'enum console_protocol', RO_RUNTIME)
field('location', 'string', RO_RUNTIME)
field('VM', 'VM ref', RO_RUNTIME)
field('other_config', '(string -> string) map', RW)

cli('uuid', 'vm-uuid=VM.uuid', 'vm-name-label=VM.name_label', 'protocol', 'location',
    'other-config')
cli_view('console', columns='uuid,vm-uuid,vm-name-label,protocol,location')
