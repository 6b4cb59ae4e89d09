import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { CONFIG_VARIABLES } from '../../bot/config.js';

/** The repository's root directory. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A file of the repository as text. */
export function repoFile(path: string): string {
  return readFileSync(join(ROOT, path), 'utf8');
}

/** The names among `names` that the configuration does not read, sorted, each once. */
export function unknownVariables(names: Iterable<string>): string[] {
  return [...new Set(names)].filter((name) => !CONFIG_VARIABLES.includes(name)).sort();
}

/** `$NAME`, `${NAME}` and `process.env.NAME` references in shell or JavaScript text. */
function referencedVariables(text: string): string[] {
  const names = [...text.matchAll(/(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1] as string);
  for (const m of text.matchAll(/process\.env\.([A-Za-z_][A-Za-z0-9_]*)/g)) names.push(m[1] as string);
  for (const m of text.matchAll(/process\.env\[['"]([^'"]+)['"]\]/g)) names.push(m[1] as string);
  return names;
}

/** One stage of a Dockerfile: its FROM and the instructions after it. */
export interface DockerStage {
  image: string;
  name: string | null;
  instructions: Instruction[];
}

/** A Dockerfile read with dockerfile-ast: its stages, and every variable it names. */
export function readDockerfile(text: string) {
  const dockerfile = DockerfileParser.parse(text);
  const stages: DockerStage[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      const [image = '', as, name] = instruction.getArguments().map((a) => a.getValue());
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? (name ?? null) : null, instructions: [] });
    } else stages.at(-1)?.instructions.push(instruction);
  }
  const variables: string[] = [];
  for (const env of dockerfile.getENVs()) variables.push(...env.getProperties().map((p) => p.getName()));
  for (const arg of dockerfile.getARGs()) variables.push(...arg.getProperties().map((p) => p.getName()));
  for (const instruction of dockerfile.getInstructions()) {
    variables.push(...instruction.getVariables().map((v) => v.getName()));
    variables.push(...referencedVariables(instruction.getArgumentsContent() ?? ''));
  }
  return { stages, variables };
}

/** The instructions of a stage with this keyword, each as its argument text. */
export function instructionsOf(stage: DockerStage, keyword: string): string[] {
  return stage.instructions
    .filter((i) => i.getKeyword() === keyword)
    .map((i) => i.getArgumentsContent() ?? '');
}

/** An env file (`NAME=value` lines, `#` comments): its values, and every name, commented-out ones too. */
export function readEnvFile(text: string): { values: Record<string, string>; names: string[] } {
  const values: Record<string, string> = {};
  const names: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    names.push(m[2] as string);
    if (!m[1]) values[m[2] as string] = (m[3] as string).trim();
  }
  return { values, names };
}

/** A compose service's `environment`, from either form (map or `NAME=value` list). */
export function composeEnvironment(service: any): Record<string, string> {
  const environment = service?.environment ?? {};
  if (Array.isArray(environment)) {
    return Object.fromEntries(
      environment.map((entry: string) => {
        const [name, ...value] = String(entry).split('=');
        return [name, value.join('=')];
      }),
    );
  }
  return Object.fromEntries(Object.entries(environment).map(([k, v]) => [k, String(v ?? '')]));
}

/** Every variable a compose file names: its services' `environment`, and `${…}` interpolations. */
export function composeVariables(text: string): string[] {
  const doc = parseYaml(text);
  const names = referencedVariables(text);
  for (const service of Object.values<any>(doc.services ?? {})) {
    names.push(...Object.keys(composeEnvironment(service)));
  }
  return names;
}

/** A Kubernetes object as kustomize renders it. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string }; [key: string]: any };

const KUSTOMIZE_DIR = 'deploy/kubernetes';

/** Whether `kubectl` can be run here. */
export function hasKubectl(): boolean {
  return spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
}

/**
 * The objects of deploy/kubernetes: rendered by `kubectl kustomize` when kubectl is installed, otherwise
 * read from the files kustomization.yaml lists (generated ConfigMaps and Secrets built from their
 * sources, without kustomize's name suffixes). Secret data is decoded either way.
 */
export function kubernetesObjects(useKubectl = hasKubectl()): K8sObject[] {
  if (useKubectl) {
    const rendered = spawnSync('kubectl', ['kustomize', join(ROOT, KUSTOMIZE_DIR)], { encoding: 'utf8' });
    if (rendered.status !== 0) throw new Error(`kubectl kustomize failed: ${rendered.stderr}`);
    return parseAllDocuments(rendered.stdout).map((d) => decodeSecret(d.toJSON() as K8sObject));
  }
  const kustomization = parseYaml(repoFile(`${KUSTOMIZE_DIR}/kustomization.yaml`));
  const objects: K8sObject[] = (kustomization.resources ?? []).flatMap((file: string) =>
    parseAllDocuments(repoFile(`${KUSTOMIZE_DIR}/${file}`)).map((d) => d.toJSON() as K8sObject),
  );
  const generated = (kind: 'ConfigMap' | 'Secret', generators: any[] = []) => {
    for (const generator of generators) {
      const data: Record<string, string> = {};
      for (const file of generator.envs ?? [])
        Object.assign(data, readEnvFile(repoFile(`${KUSTOMIZE_DIR}/${file}`)).values);
      for (const file of generator.files ?? []) data[file] = repoFile(`${KUSTOMIZE_DIR}/${file}`);
      for (const literal of generator.literals ?? []) {
        const [key, ...value] = String(literal).split('=');
        data[key as string] = value.join('=');
      }
      objects.push({ apiVersion: 'v1', kind, metadata: { name: generator.name }, data });
    }
  };
  generated('ConfigMap', kustomization.configMapGenerator);
  generated('Secret', kustomization.secretGenerator);
  return objects;
}

function decodeSecret(object: K8sObject): K8sObject {
  if (object.kind !== 'Secret' || !object.data) return object;
  const data = Object.fromEntries(
    Object.entries<string>(object.data).map(([k, v]) => [
      k,
      Buffer.from(v.replace(/\s/g, ''), 'base64').toString('utf8'),
    ]),
  );
  return { ...object, data: { ...data, ...object.stringData } };
}

/** The one object of this kind (and name, if given). */
export function objectOf(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0] as K8sObject;
}

/**
 * The environment a Deployment's container gets: its `env` values and the keys of every ConfigMap and
 * Secret it loads with `envFrom` (each must exist), plus the names of `$(VAR)` references.
 */
export function containerEnvironment(objects: K8sObject[], container: any) {
  const values: Record<string, string> = {};
  const names: string[] = [];
  for (const from of container.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    const source = objectOf(objects, from.configMapRef ? 'ConfigMap' : 'Secret', ref.name);
    for (const [key, value] of Object.entries<string>(source.data ?? {})) {
      names.push(`${from.prefix ?? ''}${key}`);
      values[`${from.prefix ?? ''}${key}`] = value;
    }
  }
  for (const entry of container.env ?? []) {
    names.push(entry.name);
    if (entry.value !== undefined) values[entry.name] = String(entry.value);
  }
  for (const arg of [...(container.command ?? []), ...(container.args ?? [])]) {
    for (const m of String(arg).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) names.push(m[1] as string);
  }
  return { values, names };
}

/**
 * The npm packages the bot's own code loads at run time (type-only imports left out): what the
 * container must have with `npm ci --omit=dev`.
 */
export function runtimeImports(): string[] {
  const packages = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const code = repoFile(path)
          .replace(/^\s*(import|export)\s+type\s[^;]*;/gm, '')
          .replace(/^\s*\/\/.*$/gm, '');
        const specifiers = [
          ...code.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'/gm),
          ...code.matchAll(/\bimport\s*\(\s*'([^']+)'\s*\)/g),
          ...code.matchAll(/\brequire(?:\.resolve)?\(\s*'([^']+)'/g),
          ...code.matchAll(/^\s*import\s+'([^']+)'/gm),
          ...code.matchAll(/createRequire\([^)]*\)\(\s*'([^']+)'/g),
        ].map((m) => m[1] as string);
        for (const specifier of specifiers) {
          if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
          const parts = specifier.split('/');
          packages.add(specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] as string));
        }
      }
    }
  };
  for (const dir of ['bot', 'cards', 'core', 'adapters']) walk(dir);
  return [...packages].sort();
}
