/* Calls of the OpenAMP and libmetal API that their headers define
 * `static inline`, which bindgen cannot bind: one exported function each,
 * `openamp_sys_<name>`, with the inline function's signature. shim.c defines
 * them against the user's headers; the crate re-exports them under the
 * API's own names. Written for this project. */
#ifndef OPENAMP_SYS_SHIM_H_
#define OPENAMP_SYS_SHIM_H_

#include <stdint.h>
#include <metal/io.h>
#include <openamp/rpmsg.h>

int openamp_sys_rpmsg_send(struct rpmsg_endpoint *ept, const void *data, int len);
int openamp_sys_rpmsg_sendto(struct rpmsg_endpoint *ept, const void *data, int len,
                             uint32_t dst);
int openamp_sys_rpmsg_trysend(struct rpmsg_endpoint *ept, const void *data, int len);
int openamp_sys_rpmsg_trysendto(struct rpmsg_endpoint *ept, const void *data, int len,
                                uint32_t dst);
int openamp_sys_rpmsg_send_nocopy(struct rpmsg_endpoint *ept, const void *data, int len);
int openamp_sys_rpmsg_sendto_nocopy(struct rpmsg_endpoint *ept, const void *data, int len,
                                    uint32_t dst);
unsigned int openamp_sys_is_rpmsg_ept_ready(struct rpmsg_endpoint *ept);
void *openamp_sys_metal_io_phys_to_virt(struct metal_io_region *io, metal_phys_addr_t phys);
metal_phys_addr_t openamp_sys_metal_io_virt_to_phys(struct metal_io_region *io, void *virt);

#endif /* OPENAMP_SYS_SHIM_H_ */
