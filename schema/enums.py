# Enumerations, as XenAPI spells their values on the wire.
enum('cls', 'VM', 'Host', 'SR', 'Pool', 'VMPP', 'VMSS', 'PVS_proxy', 'VDI', 'Certificate')
enum('console_protocol', 'vt100', 'rfb', 'rdp', display={'vt100': 'VT100', 'rfb': 'RFB', 'rdp': 'RDP'})
enum('domain_type', 'hvm', 'pv', 'pv_in_pvh', 'pvh', 'unspecified', display={'pv_in_pvh': 'pv-in-pvh'})
enum('host_allowed_operations', 'provision', 'evacuate', 'shutdown', 'reboot', 'power_on', 'vm_start', 'vm_resume', 'vm_migrate', 'apply_updates', 'enable')
enum('ip_configuration_mode', 'None', 'DHCP', 'Static')
enum('network_default_locking_mode', 'unlocked', 'disabled')
enum('network_operations', 'attaching')
enum('network_purpose', 'nbd', 'insecure_nbd')
enum('on_boot', 'reset', 'persist')
enum('on_crash_behaviour', 'destroy', 'coredump_and_destroy', 'restart', 'coredump_and_restart',
     'preserve', 'rename_restart',
     display={'destroy': 'Destroy', 'coredump_and_destroy': 'Core dump and destroy',
              'restart': 'Restart', 'coredump_and_restart': 'Core dump and restart',
              'preserve': 'Preserve', 'rename_restart': 'Rename restart'})
enum('on_normal_exit', 'destroy', 'restart', display={'destroy': 'Destroy', 'restart': 'Restart'})
enum('on_softreboot_behavior', 'soft_reboot', 'destroy', 'restart', 'preserve',
     display={'soft_reboot': 'Soft reboot', 'destroy': 'Destroy', 'restart': 'Restart',
              'preserve': 'Preserve'})
enum('pool_allowed_operations', 'ha_enable', 'ha_disable', 'cluster_create', 'designate_new_master', 'configure_repositories', 'sync_updates', 'get_updates', 'apply_updates', 'tls_verification_enable', 'cert_refresh', 'exchange_certificates_on_join', 'exchange_ca_certificates_on_join', 'copy_primary_host_certs', 'eject')
enum('storage_operations', 'scan', 'destroy', 'forget', 'plug', 'unplug', 'update', 'vdi_create', 'vdi_introduce', 'vdi_destroy', 'vdi_resize', 'vdi_clone', 'vdi_snapshot', 'vdi_mirror', 'vdi_enable_cbt', 'vdi_disable_cbt', 'vdi_data_destroy', 'vdi_list_changed_blocks', 'vdi_set_on_boot', 'pbd_create', 'pbd_destroy')
enum('task_allowed_operations', 'cancel', 'destroy', display={'cancel': 'Cancel', 'destroy': 'Destroy'})
enum('task_status_type', 'pending', 'success', 'failure', 'cancelling', 'cancelled')
enum('tristate_type', 'yes', 'no', 'unspecified', display={'yes': 'true', 'no': 'false'})
enum('vbd_mode', 'RO', 'RW')
enum('vbd_operations', 'attach', 'eject', 'insert', 'plug', 'unplug', 'unplug_force', 'pause', 'unpause')
enum('vbd_type', 'CD', 'Disk', 'Floppy')
enum('vdi_operations', 'clone', 'copy', 'resize', 'resize_online', 'snapshot', 'mirror', 'destroy', 'forget', 'update', 'force_unlock', 'generate_config', 'enable_cbt', 'disable_cbt', 'data_destroy', 'list_changed_blocks', 'set_on_boot', 'blocked')
enum('vdi_type', 'system', 'user', 'ephemeral', 'suspend', 'crashdump', 'ha_statefile',
     'metadata', 'redo_log', 'rrd', 'pvs_cache', 'cbt_metadata',
     display={'system': 'System', 'user': 'User', 'ephemeral': 'Ephemeral', 'suspend': 'Suspend',
              'crashdump': 'Crashdump', 'ha_statefile': 'HA statefile', 'metadata': 'Metadata',
              'redo_log': 'Redo log', 'rrd': 'rrd', 'pvs_cache': 'PVS cache',
              'cbt_metadata': 'CBT metadata'})
enum('vif_ipv4_configuration_mode', 'None', 'Static')
enum('vif_ipv6_configuration_mode', 'None', 'Static')
enum('vif_locking_mode', 'network_default', 'locked', 'unlocked', 'disabled')
enum('vif_operations', 'attach', 'plug', 'unplug')
enum('vm_appliance_operation', 'start', 'clean_shutdown', 'hard_shutdown', 'shutdown')
enum('vm_operations', 'snapshot', 'clone', 'copy', 'create_template', 'revert', 'checkpoint', 'snapshot_with_quiesce', 'provision', 'start', 'start_on', 'pause', 'unpause', 'clean_shutdown', 'clean_reboot', 'hard_shutdown', 'power_state_reset', 'hard_reboot', 'suspend', 'csvm', 'resume', 'resume_on', 'pool_migrate', 'migrate_send', 'get_boot_record', 'send_sysrq', 'send_trigger', 'query_services', 'shutdown', 'call_plugin', 'changing_memory_live', 'awaiting_memory_live', 'changing_dynamic_range', 'changing_static_range', 'changing_memory_limits', 'changing_shadow_memory', 'changing_shadow_memory_live', 'changing_VCPUs', 'changing_VCPUs_live', 'changing_NVRAM', 'assert_operation_valid', 'data_source_op', 'update_allowed_operations', 'make_into_template', 'import', 'export', 'metadata_export', 'reverting', 'destroy', 'create_vtpm')
enum('vm_power_state', 'Halted', 'Paused', 'Running', 'Suspended',
     display={'Halted': 'halted', 'Paused': 'paused', 'Running': 'running', 'Suspended': 'suspended'})
enum('event_operation', 'add', 'del', 'mod')
