# XenAPI error codes: code, parameter names, and the line xe prints above the
# parameters. Parameters are listed as the server raises them.
error('HANDLE_INVALID', 'class', 'handle',
      doc='The handle does not refer to an existing object. It may have been destroyed; list the objects again and retry.')
error('UUID_INVALID', 'type', 'uuid',
      doc='No object of this class has the given UUID.')
error('SESSION_AUTHENTICATION_FAILED', 'username', 'message',
      doc='The credentials given by the user are incorrect, so access has been denied.')
error('SESSION_AUTHORIZATION_FAILED', 'username', 'message',
      doc='The credentials are correct but the user may not log in.')
error('SESSION_INVALID', 'handle',
      doc='You gave an invalid session reference. It may have been invalidated by a logout or a 24-hour idle timeout; log in again.')
error('SESSION_NOT_REGISTERED', 'handle',
      doc='This session is not registered to receive events. Call event.register first.')
error('MESSAGE_METHOD_UNKNOWN', 'method',
      doc='You tried to call a method that does not exist.')
error('MESSAGE_PARAMETER_COUNT_MISMATCH', 'method', 'expected', 'received',
      doc='You tried to call a method with the incorrect number of parameters.')
error('MESSAGE_REMOVED',
      doc='This message has been removed from the API.')
error('PERMISSION_DENIED', 'message',
      doc='Caller not allowed to perform this operation.')
error('RBAC_PERMISSION_DENIED', 'permission', 'message',
      doc='The role of this session does not allow the operation.')
error('INTERNAL_ERROR', 'message',
      doc='The server failed to handle your request, due to an internal error. The log of the host has the details.')
error('FIELD_TYPE_ERROR', 'field',
      doc='The value given for this field or parameter has the wrong type.')
error('INVALID_VALUE', 'field', 'value',
      doc='The value given is invalid.')
error('VALUE_NOT_SUPPORTED', 'field', 'value', 'reason',
      doc='The value given is not supported.')
error('MAP_DUPLICATE_KEY', 'type', 'param_name', 'uuid', 'key',
      doc='The key is already in the map; remove it first to change its value.')
error('OPERATION_NOT_ALLOWED', 'reason',
      doc='This operation is not allowed.')
error('OPERATION_BLOCKED', 'ref', 'code',
      doc='The operation is blocked on this object (blocked_operations).')
error('OTHER_OPERATION_IN_PROGRESS', 'class', 'object', 'operation_type', 'operation_ref',
      doc='Another operation involving the object is currently in progress; retry when it has finished.')
error('NOT_IMPLEMENTED', 'function',
      doc='The function is not implemented.')
error('TASK_CANCELLED', 'task',
      doc='The request was cancelled.')
error('TOO_MANY_PENDING_TASKS',
      doc='Too many tasks are pending; wait for some to finish.')
error('EVENTS_LOST',
      doc='Some events have been lost from the queue and cannot be retrieved.')
error('EVENT_SUBSCRIPTION_PARSE_FAILURE', 'subscription',
      doc='The subscription could not be parsed: use "*", a class name, or "<class>/<ref>".')
error('EVENT_FROM_TOKEN_PARSE_FAILURE', 'token',
      doc='The event.from token could not be parsed: pass "" or a token returned by event.from.')
error('HOST_IS_SLAVE', 'master',
      doc='This host is a pool member; send the request to the pool master.')
error('VM_BAD_POWER_STATE', 'vm', 'expected', 'actual',
      doc='You attempted an operation on a VM that was not in an appropriate power state at the time; for example, you attempted to start a VM that was already running. The parameters returned are the VM\'s handle, and the expected and actual VM state at the time of the call.')
error('VM_IS_TEMPLATE', 'vm', 'operation',
      doc='The operation attempted is not valid for a template VM.')
error('VM_IS_SNAPSHOT', 'vm', 'operation',
      doc='The operation attempted is not valid for a snapshot.')
# Snapshots, checkpoints and reverts (ops/vm_snapshot.c).
error('VM_REVERT_FAILED', 'vm', 'snapshot',
      doc='An error occurred while reverting the VM to the snapshot; the VM is left as it was. The log of the host has the details.')
error('REVERT_ONLY_ALLOWED_ON_SNAPSHOT',
      doc='Only snapshots can be reverted to: give the uuid of a snapshot of the VM (snapshot-list).')
error('VM_CHECKPOINT_SUSPEND_FAILED', 'vm',
      doc='The memory of the VM could not be saved for the checkpoint; the VM runs on and nothing was made.')
error('VM_CHECKPOINT_RESUME_FAILED', 'vm',
      doc='The VM could not be resumed from the checkpoint; it is left suspended in the reverted state (vm-resume, or vm-shutdown --force).')
error('VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED', 'vm', 'error',
      doc='No guest agent answers in this VM, so its file systems cannot be quiesced: install the hyperxe guest agent (guest-tools.iso), or take an ordinary snapshot (vm-snapshot).')
error('VM_SNAPSHOT_WITH_QUIESCE_FAILED', 'vm',
      doc='The quiesced snapshot failed: the guest agent could not freeze the file systems. The VM is left running, thawed.')
error('VM_SNAPSHOT_WITH_QUIESCE_TIMEOUT', 'vm',
      doc='The guest agent did not freeze the file systems in time. The VM is left running, thawed.')
error('VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION',
      doc='This operation is not allowed on a VM with a disk whose on-boot mode is reset: set on-boot=persist first (vdi-param-set).')
error('VM_CANNOT_DELETE_DEFAULT_TEMPLATE', 'vm',
      doc='You cannot delete the built-in templates.')
error('VM_BIOS_STRINGS_ALREADY_SET',
      doc='The BIOS strings for this VM have already been set and cannot be changed.')
error('MEMORY_CONSTRAINT_VIOLATION', 'constraint',
      doc='The dynamic memory range does not satisfy the following constraint.')
error('MEMORY_CONSTRAINT_VIOLATION_ORDER',
      doc='The memory limits must satisfy: static_min <= dynamic_min <= dynamic_max <= static_max.')
error('VCPU_MAX_NOT_CORES_PER_SOCKET_MULTIPLE', 'vcpu_max', 'cores_per_socket',
      doc='VCPUs-max must be a multiple of platform:cores-per-socket.')
error('VM_NO_VCPUS', 'vm',
      doc='You need at least 1 VCPU to start a VM.')
error('VM_TOO_MANY_VCPUS', 'vm',
      doc='Too many VCPUs to start this VM.')
error('VM_MEMORY_SIZE_TOO_LOW', 'vm',
      doc='The specified VM has too little memory to be started. Raise memory-static-max (and the dynamic limits) to the minimum of its template, or start it with --force.')
error('VM_HVM_REQUIRED', 'vm',
      doc='HVM is required for this operation.')
error('VM_MISSING_PV_DRIVERS', 'vm',
      doc='You attempted an operation on a VM which requires PV drivers to be installed but the drivers were not detected.')
error('VM_SHUTDOWN_TIMEOUT', 'vm', 'timeout',
      doc='VM failed to shutdown before the timeout expired. Try vm-shutdown --force.')
error('VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT', 'vm',
      doc="VM didn't acknowledge the need to shutdown.")
error('VM_CRASHED', 'vm',
      doc='The VM crashed.')
error('VM_HALTED', 'vm',
      doc='The VM unexpectedly halted.')
error('VM_REBOOTED', 'vm',
      doc='The VM unexpectedly rebooted.')
error('VM_HAS_NO_SUSPEND_VDI', 'vm',
      doc='VM cannot be resumed because it has no suspend VDI.')
error('VM_NO_SUSPEND_SR', 'vm',
      doc="VM cannot be suspended because there is no SR to hold its memory. Set the VM's suspend-SR-uuid, or the host's or pool's suspend-image-sr-uuid.")
error('VM_NO_CRASHDUMP_SR', 'vm',
      doc='This VM does not have a crash dump SR specified.')
error('VM_NO_EMPTY_CD_VBD', 'vm',
      doc='The VM has no empty CD drive (VBD). Add one with vm-cd-add, or eject the CD that is in it.')
error('VM_REQUIRES_SR', 'vm', 'sr',
      doc="You attempted to run a VM on a host which doesn't have access to an SR needed by the VM. The VM has at least one VBD attached to a VDI in the SR.")
error('VM_REQUIRES_NETWORK', 'vm', 'network',
      doc="You attempted to run a VM on a host which doesn't have a PIF on a Network needed by the VM. The VM has at least one VIF attached to the Network.")
error('VM_REQUIRES_VDI', 'vm', 'vdi',
      doc='VM cannot be started because it requires a VDI which cannot be attached.')
error('VM_NOT_RESIDENT_HERE', 'vm', 'host',
      doc='The specified VM is not currently resident on the specified host.')
error('BOOTLOADER_FAILED', 'vm', 'msg',
      doc='The bootloader returned an error. Check the kernel, initrd and install-repository of the VM.')
error('UNKNOWN_BOOTLOADER', 'vm', 'bootloader',
      doc='The requested bootloader is unknown: use pygrub, eliloader or none.')
error('DOMAIN_BUILDER_ERROR', 'function', 'code', 'message',
      doc='An internal error generated by the domain builder. The message says what QEMU reported.')
error('HOST_NOT_ENOUGH_FREE_MEMORY', 'needed', 'available',
      doc='Not enough host memory is available to perform this operation.')
error('HOST_CANNOT_ATTACH_NETWORK', 'host', 'network',
      doc='Host cannot attach network (in the case of NIC bonding, this may be because attaching the network on this host would require other networks [that are currently active] to be taken down).')
error('DEVICE_ALREADY_ATTACHED', 'device',
      doc='The device is already attached to a VM.')
error('DEVICE_ALREADY_DETACHED', 'device',
      doc='The device is not currently attached.')
error('DEVICE_DETACH_REJECTED', 'type', 'ref', 'msg',
      doc='The VM rejected the attempt to detach the device.')
error('DEVICE_DETACH_TIMEOUT', 'type', 'ref',
      doc='A timeout happened while attempting to detach a device from a VM.')
error('DEVICE_ATTACH_TIMEOUT', 'type', 'ref',
      doc='A timeout happened while attempting to attach a device to a VM.')
error('VBD_NOT_UNPLUGGABLE', 'vbd',
      doc='Drive could not be hot-unplugged because it is not marked as unpluggable.')
error('VBD_NOT_EMPTY', 'vbd',
      doc='Operation could not be performed because the drive is not empty.')
error('VBD_IS_EMPTY', 'vbd',
      doc='Operation could not be performed because the drive is empty.')
error('DISK_VBD_MUST_BE_READWRITE_FOR_HVM', 'vbd',
      doc="All VBDs of type 'disk' must be read/write for HVM guests.")
error('NOT_SUPPORTED_BY_DEVICE_MODEL', 'vm', 'reason',
      doc="The VM's emulated devices cannot do this (for example, IDE disks cannot be hot-plugged); use a VM with PV drivers (virtio).")
error('DEFAULT_SR_NOT_FOUND', 'sr',
      doc='The default SR reference does not point to a valid SR.')
error('SR_FULL', 'requested', 'maximum',
      doc='The SR is full. Requested new size exceeds the maximum size.')
error('VDI_IN_USE', 'vdi', 'operation',
      doc='This operation cannot be performed because this VDI is in use by some other operation.')
error('VDI_READONLY', 'vdi',
      doc='The operation required write access but this VDI is read-only.')
error('VDI_NOT_AVAILABLE', 'vdi',
      doc='This VDI could not be found or its file cannot be used. Run sr-scan on its SR.')
error('VDI_NOT_MANAGED', 'vdi',
      doc='This operation cannot be performed on a VDI the storage manages itself (a base copy).')
error('VDI_IS_A_PHYSICAL_DEVICE', 'vdi',
      doc='The operation cannot be performed on a physical device.')
error('VDI_TOO_SMALL', 'vdi', 'minimum size',
      doc='The VDI is too small. Please resize it to at least the minimum size.')
error('VDI_TOO_LARGE', 'vdi', 'maximum size',
      doc='The VDI is too large for this format; the maximum size is given.')
error('VDI_MISSING', 'sr', 'vdi',
      doc='This VDI has no file in its SR. Run sr-scan, or forget the VDI.')
error('VDI_LOCATION_MISSING', 'sr', 'location',
      doc='No file with this location exists in the SR.')
error('VDI_INCOMPATIBLE_TYPE', 'vdi', 'type',
      doc='This operation cannot be performed because the specified VDI is of an incompatible type.')
error('VDI_IS_NOT_ISO', 'vdi', 'type',
      doc='This operation can only be performed on CD VDIs (iso files or CDROM drives).')
error('VDI_IO_ERROR', 'reason',
      doc='An I/O error occurred while reading or writing the VDI.')
error('VDI_COPY_FAILED',
      doc='The VDI copy action has failed.')
error('LOCATION_NOT_UNIQUE', 'SR', 'location',
      doc='A VDI with the specified location already exists within the SR.')
error('SR_UNKNOWN_DRIVER', 'driver',
      doc='The SR could not be connected because the driver was not recognised. See sr-list for the types this host supports (ext, nfs, iso, udev).')
error('SR_BACKEND_FAILURE', 'status', 'stdout', 'stderr',
      doc='The storage backend failed; the details follow.')
error('SR_BACKEND_FAILURE_109', 'status', 'stdout', 'stderr',
      doc='The snapshot chain is too long. Destroy some snapshots of this VDI (or copy it) and try again.')
error('SR_HAS_NO_PBDS', 'sr',
      doc='The SR has no attached PBDs. Create and plug a PBD first.')
error('SR_NOT_ATTACHED', 'sr',
      doc='The SR is not attached to this host. Plug its PBD (pbd-plug) first.')
error('SR_ATTACH_FAILED', 'sr',
      doc='Attaching this SR failed.')
error('SR_OPERATION_NOT_SUPPORTED', 'sr',
      doc='The SR backend does not support the operation (check the SR type and content type).')
error('SR_UUID_EXISTS', 'uuid',
      doc='An SR with that uuid already exists.')
error('SR_DEVICE_IN_USE',
      doc='The SR operation cannot be performed because a device underlying the SR is in use by the host.')
error('IMPORT_ERROR', 'msg',
      doc='The import failed.')
error('IMPORT_ERROR_PREMATURE_EOF',
      doc='The stream ended before the image was complete.')
error('IMPORT_ERROR_SOME_CHECKSUMS_FAILED',
      doc='Some data checksums were incorrect: the file is damaged. Export it again, or import it with force=true to accept the damaged blocks.')
error('IMPORT_ERROR_CANNOT_HANDLE_CHUNKED',
      doc='Cannot import a chunked upload: send the file with a Content-Length.')
error('IMPORT_ERROR_FAILED_TO_FIND_OBJECT', 'id',
      doc='The export refers to an object that it does not contain: the file is damaged or incomplete.')
error('IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND',
      doc='The VM has attached disks that the export does not contain.')
error('IMPORT_ERROR_UNEXPECTED_FILE', 'filename_expected', 'filename_found',
      doc='The file is not an XVA export: its first member must be ova.xml.')
error('IMPORT_INCOMPATIBLE_VERSION',
      doc='The export was written by a newer version than this host understands.')
error('CLIENT_ERROR', 'reason',
      doc='The client failed while the server was sending it data (it closed the connection or could not write the file).')
error('DUPLICATE_VM', 'vm',
      doc='A VM with the same identity already exists; import it without preserve=true to give it a new one.')
error('VM_TO_IMPORT_IS_NOT_NEWER_VERSION', 'vm', 'existing_version', 'version_to_import',
      doc='The VM being restored is not newer than the one that exists; use force=true to replace it.')
error('VBD_CDS_MUST_BE_READONLY',
      doc='Read/write CDs are not supported.')
error('VBD_NOT_REMOVABLE_MEDIA', 'vbd',
      doc='Media could not be ejected because it is not removable.')
error('VM_DUPLICATE_VBD_DEVICE', 'vm', 'vbd', 'device',
      doc='The specified VM has a duplicate VBD device and cannot be started.')
error('INVALID_DEVICE', 'device',
      doc='The device name is invalid.')
error('DEVICE_ALREADY_EXISTS', 'device',
      doc='A device with the name given already exists on the selected VM.')
error('MAC_INVALID', 'MAC',
      doc='The MAC address specified is not valid.')
error('NETWORK_CONTAINS_VIF', 'vifs',
      doc='The network contains active VIFs and cannot be deleted.')
error('NETWORK_CONTAINS_PIF', 'pifs',
      doc='The network contains active PIFs and cannot be deleted.')
error('SR_HAS_PBD', 'sr',
      doc='The SR is still connected to a host via a PBD. It cannot be destroyed or forgotten.')
error('SR_NOT_EMPTY',
      doc='The SR operation cannot be performed because the SR is not empty.')
