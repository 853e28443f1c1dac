#!/usr/bin/env node
// Verify a miliao lineage export (PROV-JSON) from outside, following only the README's
// "Verifying a lineage from outside, in any language": each event's hash (RFC 8785),
// the hash chain, its Merkle inclusion (RFC 9162) and its root read from the registry.
//
//   node verify.mjs EXPORT.json --rpc URL [--json]
//
// Exit status: 0 every event verified, 1 something did not (or is not anchored yet),
// 2 the input or the node cannot be used.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import canonicalize from "canonicalize";
import { Contract, JsonRpcProvider } from "ethers";

const GENESIS = "0".repeat(64);
const HEX64 = /^[0-9a-f]{64}$/;

function usage(message) {
  console.error(`verify.mjs: error: ${message}`);
  process.exit(2);
}

// A PROV-JSON value is plain, or typed {"$": value, "type": ...} once a PROV tool rewrote it.
function value(raw) {
  if (raw !== null && typeof raw === "object" && "$" in raw) {
    const type = String(raw.type ?? "").split(":").pop();
    return ["int", "integer", "long", "unsignedLong"].includes(type) ? Number(raw.$) : raw.$;
  }
  return raw;
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest();

// Version 2: SHA-256 of the UTF-8 bytes of the RFC 8785 text of the envelope.
function eventHash(e) {
  const envelope = {
    v: e.version, seq: e.seq, prev: e.prevHash, type: e.eventType, actor: e.actor,
    subject: e.subject, payload: JSON.parse(e.payload), at: e.recordedAt,
  };
  return sha256(Buffer.from(canonicalize(envelope), "utf8")).toString("hex");
}

const leaf = (hashHex) => sha256(Buffer.concat([Buffer.from([0]), Buffer.from(hashHex, "hex")]));
const node = (left, right) => sha256(Buffer.concat([Buffer.from([1]), left, right]));

// RFC 9162 section 2.1.3.2: fold the audit path (lowest sibling first); null if it cannot fit.
function rootFromPath(leafHash, leafIndex, treeSize, path) {
  if (!(leafIndex >= 0 && leafIndex < treeSize)) return null;
  let fn = BigInt(leafIndex);
  let sn = BigInt(treeSize - 1);
  let r = leafHash;
  for (const p of path) {
    if (sn === 0n) return null;
    if (fn & 1n || fn === sn) {
      r = node(p, r);
      if (!(fn & 1n)) {
        while (fn !== 0n && !(fn & 1n)) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = node(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

async function main(argv) {
  const args = argv.slice(2);
  const rpcAt = args.indexOf("--rpc");
  if (rpcAt < 0 || !args[rpcAt + 1]) usage("--rpc URL is required");
  const rpc = args[rpcAt + 1];
  const asJson = args.includes("--json");
  const file = args.find((a, i) => !a.startsWith("--") && i !== rpcAt + 1);
  if (!file) usage("the export file is required");

  let doc;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    usage(`cannot read ${file} as JSON: ${err.message}`);
  }
  const exportInfo = Object.fromEntries(
    Object.entries(doc?.entity?.["miliao:export"] ?? {}).map(([k, v]) => [k, value(v)]),
  );
  const registryAddress = exportInfo["miliao:registry"];
  const chainId = exportInfo["miliao:chainId"];
  const abiText = exportInfo["miliao:registryAbi"];
  if (!registryAddress || chainId === undefined || !abiText) {
    usage("the export names no registry (miliao:registry, miliao:chainId, miliao:registryAbi)");
  }

  const events = [];
  for (const [id, raw] of Object.entries(doc.activity ?? {})) {
    if (!id.startsWith("miliao:event/")) continue;
    const a = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, value(v)]));
    events.push({
      id, seq: a["miliao:seq"], prevHash: a["miliao:prevHash"], hash: a["miliao:hash"],
      eventType: a["miliao:eventType"], actor: a["miliao:actor"], subject: a["miliao:subject"],
      payload: a["miliao:payload"], recordedAt: a["miliao:recordedAt"], version: a["miliao:hashVersion"],
      leafIndex: a["miliao:leafIndex"], treeSize: a["miliao:treeSize"], path: a["miliao:merklePath"],
      root: a["miliao:root"], first: a["miliao:anchorFirstSeq"], last: a["miliao:anchorLastSeq"],
      problems: [],
    });
  }
  if (!events.length) usage(`${file} holds no activity named miliao:event/<seq>`);
  events.sort((x, y) => x.seq - y.seq);
  const bySeq = new Map(events.map((e) => [e.seq, e]));

  const provider = new JsonRpcProvider(rpc, undefined, { staticNetwork: true });
  let nodeChainId;
  try {
    nodeChainId = Number(await provider.send("eth_chainId", []));
  } catch (err) {
    provider.destroy();
    usage(`no JSON-RPC node answers at ${rpc}: ${err.shortMessage ?? err.message}`);
  }
  const registry = new Contract(registryAddress, JSON.parse(abiText), provider);
  const onChain = new Map(); // root -> {firstSeq, lastSeq} | null (never anchored)

  for (const e of events) {
    // 1. The event hash, and its link to the event before it.
    if (e.version !== 2) {
      e.problems.push(`hash version ${e.version}: only version 2 (RFC 8785) is checked here`);
    } else {
      let computed = null;
      try {
        computed = eventHash(e);
      } catch (err) {
        e.problems.push(`payload is not JSON: ${err.message}`);
      }
      if (computed !== null && computed !== e.hash) e.problems.push(`hash: content hashes to ${computed}`);
    }
    const before = bySeq.get(e.seq - 1);
    if (e.seq === 1 && e.prevHash !== GENESIS) e.problems.push("chain: event 1 must follow the genesis hash");
    if (before && before.hash !== e.prevHash) e.problems.push(`chain: prevHash is not the hash of event ${e.seq - 1}`);

    // 2. Merkle inclusion.
    if (e.root === undefined) {
      e.problems.push("not anchored yet");
      continue;
    }
    const siblings = String(e.path ?? "").split(",").filter(Boolean);
    if (!HEX64.test(String(e.root)) || !siblings.every((p) => HEX64.test(p))) {
      e.problems.push("merkle: malformed root or path");
      continue;
    }
    if (e.leafIndex !== e.seq - e.first || e.treeSize !== e.last - e.first + 1) {
      e.problems.push("merkle: leaf index or tree size does not match the anchored range");
    }
    const root = rootFromPath(leaf(e.hash), e.leafIndex, e.treeSize, siblings.map((p) => Buffer.from(p, "hex")));
    if (root === null || root.toString("hex") !== e.root) e.problems.push("merkle: the path does not lead to the root");

    // 3. The root on the chain, read from the registry.
    if (nodeChainId !== chainId) {
      e.problems.push(`registry: the node is chain ${nodeChainId}, the export says ${chainId}`);
      continue;
    }
    if (!onChain.has(e.root)) {
      try {
        const [, anchor] = await registry.anchorOfRoot("0x" + e.root);
        onChain.set(e.root, { firstSeq: Number(anchor.firstSeq), lastSeq: Number(anchor.lastSeq) });
      } catch (err) {
        if (err.revert?.name !== "RootNotAnchored") {
          provider.destroy();
          usage(`the registry call failed: ${err.shortMessage ?? err.message}`);
        }
        onChain.set(e.root, null);
      }
    }
    const anchored = onChain.get(e.root);
    if (anchored === null) e.problems.push("registry: the root was never anchored");
    else if (anchored.firstSeq !== e.first || anchored.lastSeq !== e.last) {
      e.problems.push(`registry: the root is anchored for events ${anchored.firstSeq}-${anchored.lastSeq}`);
    }
  }
  provider.destroy();

  const verified = events.filter((e) => !e.problems.length).length;
  const ok = verified === events.length;
  if (asJson) {
    console.log(JSON.stringify({
      ok, chainId: nodeChainId, registry: registryAddress, verified, events: events.length,
      roots: [...onChain.keys()],
      results: events.map((e) => ({ seq: e.seq, hash: e.hash, ok: !e.problems.length, problems: e.problems })),
    }, null, 2));
  } else {
    for (const e of events) {
      console.log(`seq ${e.seq} ${e.eventType} ${e.problems.length ? "FAIL " + e.problems.join("; ") : "OK"}`);
    }
    console.log(`${verified} of ${events.length} events verified on chain ${nodeChainId}`);
    console.log(`RESULT: ${ok ? "VERIFIED" : "NOT VERIFIED"}`);
  }
  return ok ? 0 : 1;
}

main(process.argv).then((code) => process.exit(code));
