#!/usr/bin/env node
// Reproducible build of ProvenanceRegistry.sol with the pinned solc-js.
//
//   node build.js          write ProvenanceRegistry.{abi.json,bin,build.json}
//   node build.js --check  build in memory; exit 1 naming each committed file that differs
//
// The Python side deploys the committed artifacts, so the check is what proves they are
// the compiled form of the committed source.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const HERE = __dirname;
const SOURCE = 'ProvenanceRegistry.sol';
const CONTRACT = 'ProvenanceRegistry';
const SOLC_VERSION = '0.8.37';
const ALLOWED_WARNINGS = new Set(['8760']); // a declaration named like another one

const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  // Cancun, explicitly, rather than the compiler's default (osaka, whose CLZ opcode chains
  // before Osaka cannot run). Cancun code runs on every chain from Cancun on: anvil's
  // default fork and a consortium Besu network.
  evmVersion: 'cancun',
  // The IPFS hash of the metadata depends only on the source text, its unit name and
  // these settings, so it is reproducible, and it lets Sourcify match the deployed code.
  metadata: { bytecodeHash: 'ipfs' },
  outputSelection: {
    [SOURCE]: { [CONTRACT]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
  },
};

function sha256(bytes) {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function loadSolc() {
  try {
    return require('solc');
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
    throw new Error('solc is not installed: run npm ci --prefix ledger/contracts');
  }
}

function compile() {
  const solc = loadSolc();
  const version = solc.version();
  if (!version.startsWith(`${SOLC_VERSION}+`)) {
    throw new Error(`solc ${version} is installed, ${SOLC_VERSION} is pinned: run npm ci --prefix ledger/contracts`);
  }
  const sourceBytes = fs.readFileSync(path.join(HERE, SOURCE));
  const source = sourceBytes.toString('utf8');
  const input = { language: 'Solidity', sources: { [SOURCE]: { content: source } }, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  // Warnings fail the build too, except the one the ABI asks for: anchor()'s parameter
  // `lastSeq` is named like the lastSeq() getter so clients can pass it by name.
  const problems = (output.errors || []).filter((p) => !ALLOWED_WARNINGS.has(p.errorCode));
  for (const p of problems) process.stderr.write(p.formattedMessage);
  if (problems.length) throw new Error(`${problems.length} compiler diagnostic(s) in ${SOURCE}`);

  const contract = output.contracts[SOURCE][CONTRACT];
  const bytecode = contract.evm.bytecode.object;
  const runtime = contract.evm.deployedBytecode.object;
  const build = {
    contract: CONTRACT,
    source: SOURCE,
    sourceSha256: sha256(sourceBytes),
    compiler: `solc-js ${version}`,
    settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion, metadata: SETTINGS.metadata },
    // Lets a client check that the code at a registry's address is this build.
    runtimeBytecodeSha256: sha256(Buffer.from(runtime, 'hex')),
  };
  return {
    [`${CONTRACT}.abi.json`]: JSON.stringify(contract.abi, null, 2) + '\n',
    [`${CONTRACT}.bin`]: bytecode + '\n',
    [`${CONTRACT}.build.json`]: JSON.stringify(build, null, 2) + '\n',
  };
}

function main(argv) {
  const check = argv.includes('--check');
  const files = compile();
  if (!check) {
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(HERE, name), text);
    process.stdout.write(`built ${Object.keys(files).join(', ')}\n`);
    return 0;
  }
  const stale = Object.entries(files).filter(([name, text]) => {
    const file = path.join(HERE, name);
    if (!fs.existsSync(file)) {
      process.stderr.write(`ledger/contracts/${name} is missing\n`);
      return true;
    }
    if (fs.readFileSync(file, 'utf8') !== text) {
      process.stderr.write(`ledger/contracts/${name} differs from a fresh build of ${SOURCE}\n`);
      return true;
    }
    return false;
  });
  if (stale.length) {
    process.stderr.write('run: npm run build --prefix ledger/contracts\n');
    return 1;
  }
  process.stdout.write(`${Object.keys(files).join(', ')} match a fresh build\n`);
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exitCode = 2;
}
