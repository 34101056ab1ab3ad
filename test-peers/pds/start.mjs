// A real Bluesky PDS on loopback for gate's tests: an in-memory PLC directory and a PDS in
// dev mode, both bound to 127.0.0.1, data in a fresh temporary directory.
//
//   node start.mjs [PORT] [SECONDS]
//
// PORT 0 (the default) picks a free port. When ready it prints one line on stdout:
//   ready http://localhost:PORT
// It stops itself when stdin closes (the parent went away) or after SECONDS (default 300),
// and removes its data directory.
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Secp256k1Keypair } from '@atproto/crypto'
import { PDS, envToCfg, envToSecrets } from '@atproto/pds'
import plc from '@did-plc/server'

const requestedPort = Number(process.argv[2] ?? 0)
const seconds = Number(process.argv[3] ?? 300)

// Both servers call `app.listen(port)`, which binds every interface: bind loopback instead.
function loopbackOnly(app) {
  app.listen = function (port) {
    return http.createServer(this).listen(port, '127.0.0.1')
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gate-pds-'))
let stopping = false
let pds
let plcServer

async function stop(code) {
  if (stopping) return
  stopping = true
  try { await pds?.destroy() } catch {}
  try { await plcServer?.destroy() } catch {}
  fs.rmSync(dataDir, { recursive: true, force: true })
  process.exit(code)
}

const timer = setTimeout(() => {
  process.stderr.write(`pds: time limit of ${seconds}s reached, stopping\n`)
  stop(0)
}, seconds * 1000)
timer.unref()
process.stdin.on('end', () => stop(0))
process.stdin.on('close', () => stop(0))
process.stdin.resume()
process.on('SIGTERM', () => stop(0))
process.on('SIGINT', () => stop(0))

try {
  const plcPort = await freePort()
  plcServer = plc.PlcServer.create({ db: plc.Database.mock(), port: plcPort })
  loopbackOnly(plcServer.app)
  await plcServer.start()

  const port = requestedPort || (await freePort())
  const rotation = await Secp256k1Keypair.create({ exportable: true })
  const env = {
    devMode: true,
    port,
    hostname: 'localhost',
    dataDirectory: dataDir,
    blobstoreDiskLocation: path.join(dataDir, 'blobs'),
    didPlcUrl: `http://127.0.0.1:${plcPort}`,
    inviteRequired: false,
    serviceHandleDomains: ['.test'],
    disableSsrfProtection: true,
    crawlers: [],
    rateLimitsEnabled: false,
    jwtSecret: crypto.randomBytes(32).toString('hex'),
    adminPassword: crypto.randomBytes(32).toString('hex'),
    plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotation.export()).toString('hex'),
    bskyAppViewUrl: undefined,
    modServiceUrl: undefined,
    reportServiceUrl: undefined,
  }
  pds = await PDS.create(envToCfg(env), envToSecrets(env))
  loopbackOnly(pds.app)
  await pds.start()
  process.stdout.write(`ready http://localhost:${port}\n`)
} catch (e) {
  process.stderr.write(`pds: failed to start: ${e?.stack ?? e}\n`)
  await stop(1)
}
