/* See shim.h. Each function forwards to the header's inline function of the
 * same name. Written for this project. */
#include "shim.h"

int openamp_sys_rpmsg_send(struct rpmsg_endpoint *ept, const void *data, int len)
{
	return rpmsg_send(ept, data, len);
}

int openamp_sys_rpmsg_sendto(struct rpmsg_endpoint *ept, const void *data, int len,
			     uint32_t dst)
{
	return rpmsg_sendto(ept, data, len, dst);
}

int openamp_sys_rpmsg_trysend(struct rpmsg_endpoint *ept, const void *data, int len)
{
	return rpmsg_trysend(ept, data, len);
}

int openamp_sys_rpmsg_trysendto(struct rpmsg_endpoint *ept, const void *data, int len,
				uint32_t dst)
{
	return rpmsg_trysendto(ept, data, len, dst);
}

int openamp_sys_rpmsg_send_nocopy(struct rpmsg_endpoint *ept, const void *data, int len)
{
	return rpmsg_send_nocopy(ept, data, len);
}

int openamp_sys_rpmsg_sendto_nocopy(struct rpmsg_endpoint *ept, const void *data, int len,
				    uint32_t dst)
{
	return rpmsg_sendto_nocopy(ept, data, len, dst);
}

unsigned int openamp_sys_is_rpmsg_ept_ready(struct rpmsg_endpoint *ept)
{
	return is_rpmsg_ept_ready(ept);
}

void *openamp_sys_metal_io_phys_to_virt(struct metal_io_region *io, metal_phys_addr_t phys)
{
	return metal_io_phys_to_virt(io, phys);
}

metal_phys_addr_t openamp_sys_metal_io_virt_to_phys(struct metal_io_region *io, void *virt)
{
	return metal_io_virt_to_phys(io, virt);
}
