/** The QEMU options of the guest agent channel: a virtio-serial port backed by a unix socket. */
import { AGENT_PORT_NAME } from "./protocol.ts";

/**
 * `-device virtio-serial-{device,pci}`, a server socket chardev at `socketPath` and the named
 * port the guest agent opens (`/sys/class/virtio-ports/*` names it). Pure.
 */
export function agentArgs(socketPath: string, mmio: boolean): string[] {
  return [
    "-device",
    mmio ? "virtio-serial-device,id=agentbus" : "virtio-serial-pci,id=agentbus",
    "-chardev",
    `socket,id=agent,path=${socketPath.replaceAll(",", ",,")},server=on,wait=off`,
    "-device",
    `virtserialport,bus=agentbus.0,chardev=agent,name=${AGENT_PORT_NAME}`,
  ];
}
