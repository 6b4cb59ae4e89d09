import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Copy } from 'dockerfile-ast';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CONFIG_VARIABLES, loadConfig, parsePolicy } from '../../../bot/config.js';
import { STOP_LIMIT_MS } from '../../../bot/stop.js';
import { type BotServer, send, startBot } from '../../support/bot-server.js';
import {
  composeEnvironment,
  composeVariables,
  containerEnvironment,
  hasKubectl,
  instructionsOf,
  type K8sObject,
  kubernetesObjects,
  objectOf,
  ROOT,
  readDockerfile,
  readEnvFile,
  repoFile,
  runtimeImports,
  unknownVariables,
} from '../../support/deploy-files.js';

const packageJson = JSON.parse(repoFile('package.json'));
/** The port the bot listens on when PORT is not set. */
const DEFAULT_PORT = loadConfig({}).port;
/** Variables whose values are secrets: never in an image, only in .env or a Kubernetes Secret. */
const SECRET = /TOKEN|SECRET|PASSWORD|REDIS_URL/;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mdr-deploy-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Load the configuration an environment gives, with POLICY_FILE read from `policyText` instead. */
function configOf(env: Record<string, string>, policyText: string) {
  const policy = join(dir, `policy-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(policy, policyText);
  return loadConfig({ ...env, POLICY_FILE: policy });
}

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration);
  if (!m) throw new Error(`not a duration: ${duration}`);
  return Number(m[1]) / (m[2] === 'ms' ? 1000 : m[2] === 'm' ? 1 / 60 : 1);
}

describe('Dockerfile', () => {
  const text = repoFile('Dockerfile');
  const { stages, variables } = readDockerfile(text);
  const build = stages[0]!;
  const runtime = stages.at(-1)!;

  it('builds with the dev dependencies, then runs on Node 20 slim with the production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages.map((s) => s.image)).toEqual(stages.map(() => 'node:20-bookworm-slim'));
    expect(instructionsOf(build, 'RUN')).toEqual(
      expect.arrayContaining([expect.stringMatching(/^npm ci\b(?!.*--omit=dev)/), 'npm run build']),
    );
    expect(packageJson.scripts.build).toMatch(/^tsc -p tsconfig\.build\.json$/);
    expect(instructionsOf(runtime, 'RUN').join('\n')).toMatch(/npm ci --omit=dev/);
    expect(instructionsOf(runtime, 'RUN').join('\n')).not.toMatch(/npm run build|tsc|npm start/);
    const copied = runtime.instructions
      .filter((i) => i.getKeyword() === 'COPY')
      .map((i) => [(i as Copy).getFromFlag()?.getValue() ?? '', i.getArgumentsContent()].join(' ').trim());
    expect(copied.filter((c) => !c.startsWith('package.json'))).toEqual([`${build.name} /app/dist ./dist`]);
  });

  it('starts the compiled entry point as `npm start` does, without its build step', () => {
    const cmd = instructionsOf(runtime, 'CMD');
    expect(cmd).toHaveLength(1);
    const args = JSON.parse(cmd[0]!) as string[];
    expect(args.join(' ')).toBe(packageJson.scripts.start);
    // dist/bot/main.js is what tsc (outDir dist, rootDir .) makes of bot/main.ts; before it, only the V8
    // heap sizes (docs/performance.md, Memory), which the bench starts the bot with too.
    expect(args[0]).toBe('node');
    expect(args.at(-1)).toBe('dist/bot/main.js');
    expect(args.slice(1, -1)).toEqual([
      expect.stringMatching(/^--max-old-space-size=\d+$/),
      expect.stringMatching(/^--max-semi-space-size=\d+$/),
    ]);
    expect(existsSync(join(ROOT, 'bot/main.ts'))).toBe(true);
    expect(instructionsOf(runtime, 'ENTRYPOINT')).toEqual([]);
  });

  it('needs no dev dependency at run time: every package the bot loads is a production dependency', () => {
    const imports = runtimeImports();
    expect(imports).toEqual(expect.arrayContaining(['express', 'ioredis', 'bullmq', 'zod']));
    const missing = imports.filter((name) => !(name in packageJson.dependencies));
    expect(missing).toEqual([]);
  });

  it('runs as a non-root user, exposes the default port, checks /healthz with node and stops on SIGTERM', () => {
    const user = instructionsOf(runtime, 'USER');
    expect(user).toHaveLength(1);
    expect(user[0]).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(instructionsOf(runtime, 'EXPOSE')).toEqual([String(DEFAULT_PORT)]);
    const healthcheck = instructionsOf(runtime, 'HEALTHCHECK');
    expect(healthcheck).toHaveLength(1);
    const probe = JSON.parse(healthcheck[0]!.replace(/^.*?\bCMD\s+/, '')) as string[];
    expect(probe.slice(0, 2)).toEqual(['node', '-e']);
    expect(probe[2]).toContain(`process.env.PORT || ${DEFAULT_PORT}`);
    expect(probe[2]).toContain("'/healthz'");
    expect(instructionsOf(runtime, 'STOPSIGNAL')).toEqual(['SIGTERM']);
  });

  it('names no variable the configuration does not read, and sets no secret', () => {
    expect(unknownVariables(variables)).toEqual([]);
    expect(variables.filter((name) => SECRET.test(name))).toEqual([]);
    // The check itself: a variable the bot does not read is reported.
    const drifted = readDockerfile(`${text}\nENV MDR_PORT=8080\nRUN echo $NODE_EXTRA\n`);
    expect(unknownVariables(drifted.variables)).toEqual(['MDR_PORT', 'NODE_EXTRA']);
  });

  it('keeps settings, secrets and local builds out of the build context', () => {
    const ignored = repoFile('.dockerignore').split('\n');
    expect(ignored).toEqual(expect.arrayContaining(['.env', '.env.*', '**/.env', 'node_modules', 'dist']));
  });
});

describe('compose.yaml', () => {
  const text = repoFile('compose.yaml');
  const compose = parseYaml(text);
  const bot = compose.services.bot;
  const redis = compose.services.redis;
  const example = readEnvFile(repoFile('.env.example'));

  it('runs the bot from the Dockerfile with Redis 7 (AOF on, data in a named volume)', () => {
    expect(bot.build).toBe('.');
    expect(bot.env_file).toBe('.env');
    expect(redis.image).toBe('redis:7');
    expect(redis.command.join(' ')).toMatch(/--appendonly yes/);
    const [volume, target] = String(redis.volumes[0]).split(':');
    expect(target).toBe('/data');
    expect(Object.keys(compose.volumes)).toContain(volume);
    expect(bot.depends_on.redis.condition).toBe('service_healthy');
    const environment = composeEnvironment(bot);
    expect(environment.REDIS_URL).toBe('redis://redis:6379/0');
  });

  it('publishes the port the bot listens on and waits longer than the bot takes to stop', () => {
    const environment = { ...example.values, ...composeEnvironment(bot) };
    const port = loadConfig({ PORT: environment.PORT ?? '' }).port;
    expect(port).toBe(DEFAULT_PORT);
    expect(bot.ports.map((p: string) => String(p).split(':').at(-1))).toEqual([String(port)]);
    expect(seconds(bot.stop_grace_period)).toBeGreaterThan(STOP_LIMIT_MS / 1000);
  });

  it('names only variables the configuration reads, in compose.yaml and .env.example', () => {
    expect(unknownVariables(composeVariables(text))).toEqual([]);
    expect(unknownVariables(example.names)).toEqual([]);
    expect(example.names).toEqual(expect.arrayContaining(['INGEST_TOKEN', 'SLACK_BOT_TOKEN', 'LOG_LEVEL']));
    // The check itself: an unknown variable in either file is reported.
    const drifted = text.replace('      POLICY_FILE:', '      BOT_MODE: prod\n      POLICY_FILE:');
    expect(unknownVariables(composeVariables(drifted))).toEqual(['BOT_MODE']);
    expect(unknownVariables(readEnvFile('# SLACK_TOKEN=\nLOG_LEVEL=info\n').names)).toEqual(['SLACK_TOKEN']);
  });

  it('gives a configuration the bot accepts, with the mounted policy file', () => {
    const environment = { ...example.values, ...composeEnvironment(bot) };
    const mount = bot.volumes
      .map((v: string) => String(v).split(':'))
      .find(([, target]: string[]) => target === environment.POLICY_FILE);
    expect(mount).toBeDefined();
    const policyText = repoFile(mount[0].replace(/^\.\//, ''));
    const config = configOf(environment, policyText);
    expect(config.redis?.url).toBe('redis://redis:6379/0');
    expect(config.localMode).toBe(false);
    expect(config.policy.roles.experts.length).toBeGreaterThan(0);
  });
});

describe.each([
  ...(hasKubectl() ? [{ how: 'rendered by kubectl kustomize', kubectl: true }] : []),
  { how: 'read from the files kustomization.yaml lists', kubectl: false },
])('deploy/kubernetes, $how', ({ kubectl }) => {
  const objects = kubernetesObjects(kubectl);
  const deployment = objectOf(objects, 'Deployment');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const podLabels = deployment.spec.template.metadata.labels;
  const matches = (selector: Record<string, string>) =>
    Object.entries(selector).every(([k, v]) => podLabels[k] === v);

  it('runs 2 replicas, ready on /readyz and alive on /healthz, on the port the bot listens on', () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(pod.containers).toHaveLength(1);
    const port = container.ports.find((p: any) => p.name === 'http');
    const env = containerEnvironment(objects, container).values;
    expect(port.containerPort).toBe(loadConfig({ PORT: env.PORT ?? '' }).port);
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.command).toBeUndefined();
    expect(container.args).toBeUndefined();
  });

  it('gives the bot longer than its own stop limit, after the preStop pause', () => {
    const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
    const pause = preStop[0] === 'sleep' ? Number(preStop[1]) : 0;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(pause + STOP_LIMIT_MS / 1000);
  });

  it('runs as non-root on a read-only root filesystem with /tmp writable, within resources', () => {
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    const tmp = container.volumeMounts.find((m: any) => m.mountPath === '/tmp');
    expect(pod.volumes.find((v: any) => v.name === tmp.name).emptyDir).toBeDefined();
    expect(container.resources.requests.cpu).toBeDefined();
    expect(container.resources.requests.memory).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
  });

  it('has a Service, a PodDisruptionBudget and a CPU HorizontalPodAutoscaler for the pods', () => {
    const service = objectOf(objects, 'Service');
    expect(matches(service.spec.selector)).toBe(true);
    expect(service.spec.ports.map((p: any) => p.targetPort)).toEqual(['http']);
    const pdb = objectOf(objects, 'PodDisruptionBudget');
    expect(matches(pdb.spec.selector.matchLabels)).toBe(true);
    expect(pdb.spec.minAvailable).toBe(1);
    const hpa = objectOf(objects, 'HorizontalPodAutoscaler');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: deployment.metadata.name,
    });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.metrics).toEqual([
      expect.objectContaining({ type: 'Resource', resource: expect.objectContaining({ name: 'cpu' }) }),
    ]);
  });

  it('names only variables the configuration reads, secrets in the Secret only', () => {
    const env = containerEnvironment(objects, container);
    expect(unknownVariables(env.names)).toEqual([]);
    const configMaps = objects.filter((o) => o.kind === 'ConfigMap');
    const plain = configMaps
      .flatMap((o) => Object.keys(o.data ?? {}))
      .filter((k) => CONFIG_VARIABLES.includes(k));
    expect(plain.filter((name) => SECRET.test(name))).toEqual([]);
    const secret = container.envFrom.find((f: any) => f.secretRef);
    expect(Object.keys(objectOf(objects, 'Secret', secret.secretRef.name).data)).toEqual(
      expect.arrayContaining(['REDIS_URL', 'INGEST_TOKEN', 'ADMIN_TOKEN']),
    );
    // The check itself: a variable added to the container is reported.
    const drifted = { ...container, env: [{ name: 'MDR_REPLICA_NAME', value: 'a' }] };
    expect(unknownVariables(containerEnvironment(objects, drifted).names)).toEqual(['MDR_REPLICA_NAME']);
  });

  it('mounts the ConfigMap policy where POLICY_FILE points, and gives a configuration the bot accepts', () => {
    const env = containerEnvironment(objects, container).values;
    const policyFile = env.POLICY_FILE!;
    const mount = container.volumeMounts.find((m: any) => policyFile.startsWith(`${m.mountPath}/`));
    const volume = pod.volumes.find((v: any) => v.name === mount.name);
    const configMap: K8sObject = objectOf(objects, 'ConfigMap', volume.configMap.name);
    const policyText = configMap.data[basename(policyFile)];
    expect(parsePolicy(policyText).roles.experts.length).toBeGreaterThan(0);
    const config = configOf(env, policyText);
    expect(config.localMode).toBe(false);
    expect(config.redis?.url).toMatch(/^rediss?:\/\//);
    expect(config.ingestToken).toBeDefined();
  });
});

describe('health routes the deployment files probe', () => {
  let bot: BotServer;
  beforeAll(async () => {
    bot = await startBot();
  });
  afterAll(async () => {
    await bot.close();
  });

  it('are served by the bot: /healthz alive, /readyz ready with its store', async () => {
    const healthz = await send(`${bot.url}/healthz`);
    expect(healthz).toMatchObject({ status: 200, body: { status: 'ok' } });
    const readyz = await send(`${bot.url}/readyz`);
    expect(readyz).toMatchObject({ status: 200, body: { status: 'ready' } });
    expect((await send(`${bot.url}/livez`)).status).toBe(404);
  });
});
