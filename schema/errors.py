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
