/** Types of npm:ssh2's lib/server.js (CommonJS: `module.exports = Server`). */
import { Server } from "./_ssh2.d.ts";
export default Server;
