/**
 * `instance list` as JSON text rendered by SQLite (issue 13: a configuration of thousands). The
 * 10,000 records were built as objects here and serialised for the IPC frame; with kattach's
 * 1 MiB young generation (lib/v8_flags.ts) those objects cost more in garbage collection than
 * the query. SQLite's json_object() and group_concat() write the same text in C, in one
 * statement, and the IPC server sends it as it is (ipc/server.ts JsonText). The shape is the
 * result schema of `instance.list` (ipc/schemas.ts Instance); kattach/store_lists_test.ts holds
 * it equal to the object-building code (Store.listInstances + withRuntimes) on random stores.
 * `vlan list` (4,094 VLANs) stays objects: rendered here it was slower (111 against 68 ms
 * through IPC, interleaved, bench/scale.ts --compare).
 */
import { SLIRP } from "../vmimage/mod.ts";
import { likeContains, type ListPage, type Store } from "./store.ts";

/** A 0/1 column as a JSON boolean. */
function jsonBool(x: string): string {
  return `json(CASE ${x} WHEN 1 THEN 'true' ELSE 'false' END)`;
}

/** One instance as the `instance.list` result has it (ipc/schemas.ts Instance, in its order). */
const INSTANCE_OBJECT = `json_object(
  'name', i.name, 'vmimage', i.vmimage, 'state', i.state, 'autostart', ${jsonBool("i.autostart")},
  'restartPolicy', i.restart_policy,
  'nics', (SELECT json_group_array(json_object('index', n.idx, 'vlan', n.vlan, 'mac', n.mac, 'ip', n.ip,
      'address', coalesce(CASE WHEN ?4 = 1 AND n.ip IS NOT NULL THEN (SELECT n.ip || substr(v.cidr,
        instr(v.cidr, '/')) FROM vlan v WHERE v.id = n.vlan) END, '${SLIRP.guest}')) ORDER BY n.idx)
    FROM nic n WHERE n.instance = i.name),
  'createdAt', i.created_at,
  'pid', (SELECT p.value FROM json_each(?1) p WHERE p.key = i.name),
  'forwards', json(coalesce(r.forwards, '[]')),
  'health', (SELECT json_group_array(json_object('module', h.module, 'status', h.status, 'detail', h.detail, 'checkedAt', h.checked_at) ORDER BY h.module)
    FROM instance_health h WHERE h.instance = i.name),
  'restarts', coalesce(r.restarts, 0),
  'lastExit', coalesce(r.last_exit, ''),
  'storage', i.storage)`;

/** The `filter` (?5: a LIKE pattern) and `state` (?6: a JSON array of states) of a list. */
const WHERE =
  "(?5 IS NULL OR name LIKE ?5 ESCAPE '\\') AND (?6 IS NULL OR state IN (SELECT value FROM json_each(?6)))";

const INSTANCES_ALL = `SELECT '[' || coalesce(group_concat(${INSTANCE_OBJECT}, ','
    ORDER BY i.vmimage, i.created_at, i.name), '') || ']' AS list
  FROM (SELECT * FROM instance WHERE ${WHERE} ORDER BY vmimage, created_at, name LIMIT ?2 OFFSET ?3) i
  LEFT JOIN instance_runtime r ON r.instance = i.name`;

const INSTANCES_OF_IMAGE = `SELECT '[' || coalesce(group_concat(${INSTANCE_OBJECT}, ','
    ORDER BY i.created_at, i.name), '') || ']' AS list
  FROM (SELECT * FROM instance WHERE vmimage = ?7 AND ${WHERE} ORDER BY created_at, name LIMIT ?2 OFFSET ?3) i
  LEFT JOIN instance_runtime r ON r.instance = i.name`;

/**
 * The `instance.list` result as JSON text: every instance (or those of `vmimage`) in the list's
 * order, a page of them with `limit`/`offset` (`filter`: a part of the name; `state`: one of these), with the QEMU pids of the running ones; each NIC's
 * `address` as kattach/network.ts nicAddress() gives it (`bridged`: the networking mode).
 */
export function instanceListJson(
  store: Store,
  options: ListPage & {
    vmimage?: string;
    state?: readonly string[];
    pids: ReadonlyMap<string, number>;
    bridged: boolean;
  },
): string {
  const params = [
    JSON.stringify(Object.fromEntries(options.pids)),
    options.limit ?? -1,
    options.offset ?? 0,
    options.bridged ? 1 : 0,
    likeContains(options.filter),
    options.state ? JSON.stringify(options.state) : null,
  ];
  const row = options.vmimage === undefined
    ? store.get(INSTANCES_ALL, params)
    : store.get(INSTANCES_OF_IMAGE, [...params, options.vmimage]);
  return String(row?.list ?? "[]");
}
