/*
 * rpmsg-lite platform header for a hosted (Linux/macOS) build of rpmsg-lite,
 * used by this crate's interop test. Written for this project (not derived
 * from an NXP port): it declares what rpmsg-lite's core files and
 * `rpmsg_env.h` expect from a platform layer. The functions themselves are
 * implemented in Rust by the test (`tests/host_env/mod.rs`).
 *
 * Layout facts both sides must agree on (our `LinkConfig::rpmsg_lite`):
 * vring 0 at the shared-memory base, vring 1 one VRING_SIZE later, buffers
 * after RL_VRING_OVERHEAD, legacy ring alignment 0x1000.
 */
#ifndef RPMSG_PLATFORM_H_
#define RPMSG_PLATFORM_H_

#include <stdint.h>

/* Legacy vring alignment; Linux and our `remoteproc` use 4 KiB. */
#ifndef VRING_ALIGN
#define VRING_ALIGN (0x1000U)
#endif

/* Room reserved for each vring (descriptors, avail and used rings). */
#ifndef VRING_SIZE
#define VRING_SIZE (0x8000UL)
#endif

/* Both vrings of one link come before the buffers. */
#define RL_VRING_OVERHEAD (2UL * VRING_SIZE)

/* Size of the environment's interrupt table: one entry per virtqueue id. */
#ifndef RL_PLATFORM_MAX_ISR_COUNT
#define RL_PLATFORM_MAX_ISR_COUNT (32U)
#endif

/* A virtqueue id is (link id << 1) | queue index (0 or 1). */
#define RL_GET_VQ_ID(link_id, queue_id) (((queue_id) & 0x1U) | (((link_id) << 1U) & 0xFFFFFFFEU))
#define RL_GET_LINK_ID(id)              (((id) & 0xFFFFFFFEU) >> 1U)
#define RL_GET_Q_ID(id)                 ((id) & 0x1U)

/* Link ids 0..15: 32 virtqueue ids, the size of the interrupt table. */
#define RL_PLATFORM_HIGHEST_LINK_ID (15U)

/* Interrupts (one simulated interrupt line per virtqueue id). */
int32_t platform_init_interrupt(uint32_t vector_id, void *isr_data);
int32_t platform_deinit_interrupt(uint32_t vector_id);
int32_t platform_interrupt_enable(uint32_t vector_id);
int32_t platform_interrupt_disable(uint32_t vector_id);
int32_t platform_in_isr(void);
void platform_notify(uint32_t vector_id);

/* Delay (services pending interrupts while it waits). */
void platform_time_delay(uint32_t num_msec);

/* Memory: no MMU to program and a coherent host, so these do nothing. */
void platform_map_mem_region(uint32_t vrt_addr, uint32_t phy_addr, uint32_t size, uint32_t flags);
void platform_cache_all_flush_invalidate(void);
void platform_cache_disable(void);
void platform_cache_invalidate(void *data, uint32_t len);
void platform_cache_flush(void *data, uint32_t len);

/* Address translation between this process's view of the shared window and
 * the 32-bit "physical" (bus) address written into descriptors. */
uintptr_t platform_vatopa(void *addr);
void *platform_patova(uintptr_t addr);

int32_t platform_init(void);
int32_t platform_deinit(void);

#endif /* RPMSG_PLATFORM_H_ */
