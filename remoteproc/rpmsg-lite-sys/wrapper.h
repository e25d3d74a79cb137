/* What bindgen reads. rpmsg_lite.h pulls in, in the order they need,
 * rpmsg_compiler.h, virtqueue.h (with virtio_ring.h and llist.h),
 * rpmsg_env.h (with rpmsg_env_specific.h, rpmsg_platform.h) and
 * rpmsg_default_config.h (with the user's rpmsg_config.h). */
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "rpmsg_lite.h"
#include "rpmsg_ns.h"
#if defined(__has_include)
#if __has_include("rpmsg_queue.h")
#include "rpmsg_queue.h"
#endif
#endif
