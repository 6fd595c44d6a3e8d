/** The host: the few facts and side effects KaOS needs from the machine it runs on. */
export { type Accel, type AccelProbe, decideAccel, probeAccel } from "./accel.ts";
