/*
 * rpmsg-lite configuration for a hosted build of rpmsg-lite, used by this
 * crate's interop test. Written for this project. rpmsg-lite always includes
 * a file of this name (`RL_USE_CUSTOM_CONFIG` is hard-wired to 1); every
 * value left out here takes its default from `rpmsg_default_config.h`.
 *
 * Build rpmsg-lite and run bindgen with the same file: struct layouts depend
 * on RL_USE_STATIC_API and RL_USE_ENVIRONMENT_CONTEXT.
 */
#ifndef RPMSG_CONFIG_H_
#define RPMSG_CONFIG_H_

/* Granularity of blocking calls' timeouts (env_sleep_msec steps). */
#define RL_MS_PER_INTERVAL (1)

/* 512-byte buffers (16-byte header + 496 payload), as Linux and ours. */
#define RL_BUFFER_PAYLOAD_SIZE (496U)

/* Buffers per direction; must equal our link's queue size. */
#define RL_BUFFER_COUNT (16U)

/* Fixed layout: vring 0 at the base, vring 1 at base + VRING_SIZE. */
#define RL_ALLOW_CUSTOM_SHMEM_CONFIG (0)

#define RL_API_HAS_ZEROCOPY (1)
#define RL_USE_STATIC_API (0)
#define RL_USE_ENVIRONMENT_CONTEXT (0)
#define RL_CLEAR_USED_BUFFERS (0)
#define RL_USE_DCACHE (0)
#define RL_USE_MCMGR_IPC_ISR_HANDLER (0)
#define RL_DEBUG_CHECK_BUFFERS (0)

/* Kick the peer after giving RX buffers back (a blocked sender wakes). */
#define RL_ALLOW_CONSUMED_BUFFERS_NOTIFICATION (1)

/* A failed internal assertion reports where and aborts the process instead
 * of hanging forever in RL_HANG (the test implements this function). */
void rl_host_assert_failed(const char *file, int line);
#define RL_ASSERT(x)                                      \
    do                                                    \
    {                                                     \
        if (!(x))                                         \
        {                                                 \
            rl_host_assert_failed(__FILE__, __LINE__);    \
        }                                                 \
    } while (0)

#endif /* RPMSG_CONFIG_H_ */
