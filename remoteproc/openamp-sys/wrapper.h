/* What bindgen reads: OpenAMP's rpmsg (virtio transport, name service) and
 * remoteproc virtio device API, and the libmetal calls a user of them needs
 * (init, I/O regions). open_amp.h pulls in rpmsg.h, rpmsg_virtio.h,
 * remoteproc.h and remoteproc_virtio.h, which include libmetal's headers. */
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <metal/sys.h>
#include <metal/io.h>
#include <metal/log.h>
#include <openamp/open_amp.h>
#include <openamp/remoteproc_virtio.h>
/* The static-inline calls, as exported functions (ours). */
#include "shim.h"
