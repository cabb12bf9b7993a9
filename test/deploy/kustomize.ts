/**
 * The part of kustomize that deploy/kubernetes uses, resolved without
 * kubectl: resources (files and kustomization directories), namespace,
 * images, strategic-merge patches and configMapGenerator without name hashes.
 * Anything else in a kustomization is refused, so that a manifest never
 * passes these tests by being silently ignored. Where kubectl is installed,
 * kubernetes.test.ts checks that `kubectl kustomize` builds the same objects.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { parseAllDocuments } from "yaml";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export interface Metadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  [key: string]: Json | undefined;
}
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Metadata;
  [key: string]: Json | Metadata | undefined;
}

/** Kinds that live outside namespaces (the ones a control plane's manifests might hold). */
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass", "StorageClass"]);

const KUSTOMIZATION_KEYS = new Set(["apiVersion", "kind", "resources", "namespace", "images", "patches", "configMapGenerator"]);

interface Image {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

interface Patch {
  path?: string;
  patch?: string;
  target?: unknown;
}

interface ConfigMapGenerator {
  name: string;
  files?: string[];
  options?: { disableNameSuffixHash?: boolean; labels?: Record<string, string> };
}

const isObject = (v: unknown): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The objects in one YAML file (several documents, empty ones skipped). */
export function readObjects(file: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    if (!isObject(value) || typeof value.apiVersion !== "string" || typeof value.kind !== "string" || !isObject(value.metadata) || typeof value.metadata.name !== "string") {
      throw new Error(`${file}: a document without apiVersion, kind and metadata.name`);
    }
    out.push(value as unknown as K8sObject);
  }
  return out;
}

/** kind/namespace/name: what makes an object one object. */
export const idOf = (o: K8sObject): string => `${o.apiVersion.split("/").length > 1 ? o.apiVersion.split("/")[0] : "core"}/${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;

function kustomizationFile(dir: string): string {
  for (const name of ["kustomization.yaml", "kustomization.yml", "Kustomization"]) {
    const file = join(dir, name);
    if (existsSync(file)) return file;
  }
  throw new Error(`${dir}: no kustomization.yaml`);
}

/**
 * Strategic merge as the API server does it for the lists these manifests
 * patch: maps merge key by key (null removes a key), lists of objects that
 * all have a name (containers, env, volumes, volumeMounts have other keys
 * in Kubernetes, but these manifests patch none) merge by name, other
 * lists are replaced.
 */
export function strategicMerge(target: Json, patch: Json): Json {
  if (isObject(target) && isObject(patch)) {
    const out: Record<string, Json> = { ...target };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete out[key];
      else out[key] = key in target ? strategicMerge(target[key]!, value) : value;
    }
    return out;
  }
  const named = (list: Json[]) => list.every((item) => isObject(item) && typeof item.name === "string");
  if (Array.isArray(target) && Array.isArray(patch) && named(target) && named(patch)) {
    // kustomize's order: the patch's items (merged with their namesakes) first, then the others as they were.
    const merged = (patch as Record<string, Json>[]).map((item) => {
      const same = (target as Record<string, Json>[]).find((t) => t.name === item.name);
      return same ? strategicMerge(same, item) : item;
    });
    const rest = (target as Record<string, Json>[]).filter((t) => !(patch as Record<string, Json>[]).some((item) => item.name === t.name));
    return [...merged, ...rest];
  }
  return patch;
}

/** Every container list of a workload's pod template (Deployment, StatefulSet, DaemonSet, Job, CronJob). */
export function podSpecOf(o: K8sObject): Record<string, Json> | undefined {
  const spec = o.spec as Record<string, Json> | undefined;
  if (!isObject(spec)) return undefined;
  if (o.kind === "CronJob") {
    const job = (spec.jobTemplate as Record<string, Json> | undefined)?.spec as Record<string, Json> | undefined;
    const pod = (job?.template as Record<string, Json> | undefined)?.spec;
    return isObject(pod) ? pod : undefined;
  }
  const pod = (spec.template as Record<string, Json> | undefined)?.spec;
  return isObject(pod) ? pod : undefined;
}

export function containersOf(o: K8sObject): Record<string, Json>[] {
  const pod = podSpecOf(o);
  if (!pod) return [];
  return [...((pod.initContainers as Record<string, Json>[] | undefined) ?? []), ...((pod.containers as Record<string, Json>[] | undefined) ?? [])];
}

/** An image reference's name: without tag and digest (a registry's port stays). */
export function imageName(ref: string): string {
  const noDigest = ref.split("@")[0]!;
  const slash = noDigest.lastIndexOf("/");
  const colon = noDigest.lastIndexOf(":");
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

function applyImages(objects: K8sObject[], images: Image[]): void {
  for (const o of objects) {
    for (const c of containersOf(o)) {
      const ref = c.image as string;
      const rule = images.find((i) => i.name === imageName(ref));
      if (!rule) continue;
      const name = rule.newName ?? imageName(ref);
      const rest = ref.slice(imageName(ref).length);
      const tag = rule.newTag !== undefined ? `:${rule.newTag}` : rest.startsWith(":") ? rest.split("@")[0]! : "";
      c.image = rule.digest !== undefined ? `${name}@${rule.digest}` : `${name}${tag}`;
    }
  }
}

/** The objects a kustomization directory builds, in the order of its resources. */
export function build(dir: string): K8sObject[] {
  const file = kustomizationFile(dir);
  const k = readObjectsLoose(file);
  for (const key of Object.keys(k)) if (!KUSTOMIZATION_KEYS.has(key)) throw new Error(`${file}: "${key}" is not resolved by test/deploy/kustomize.ts`);
  const objects: K8sObject[] = [];
  const add = (o: K8sObject) => {
    if (objects.some((x) => idOf(x) === idOf(o))) throw new Error(`${file}: ${idOf(o)} twice`);
    objects.push(o);
  };
  for (const entry of (k.resources as string[] | undefined) ?? []) {
    const path = join(dir, entry);
    if (!existsSync(path)) throw new Error(`${file}: resource ${entry} does not exist`);
    for (const o of statSync(path).isDirectory() ? build(path) : readObjects(path)) add(o);
  }
  for (const gen of (k.configMapGenerator as unknown as ConfigMapGenerator[] | undefined) ?? []) {
    if (gen.options?.disableNameSuffixHash !== true) throw new Error(`${file}: configMapGenerator ${gen.name} needs options.disableNameSuffixHash: true here`);
    const data: Record<string, string> = {};
    for (const f of gen.files ?? []) {
      // kustomize loads files only from within the kustomization's own directory.
      if (relative(dir, join(dir, f)).startsWith("..")) throw new Error(`${file}: ${f} is outside ${dir}`);
      data[basename(f)] = readFileSync(join(dir, f), "utf8");
    }
    add({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: gen.name, ...(gen.options.labels ? { labels: gen.options.labels } : {}) }, data });
  }
  for (const p of (k.patches as Patch[] | undefined) ?? []) {
    if (p.target !== undefined || p.path === undefined) throw new Error(`${file}: only strategic-merge patches by path are resolved here`);
    for (const patch of readObjects(join(dir, p.path))) {
      const at = objects.findIndex((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name && o.apiVersion === patch.apiVersion);
      if (at === -1) throw new Error(`${file}: patch ${p.path} matches no ${patch.kind} ${patch.metadata.name}`);
      objects[at] = strategicMerge(objects[at] as unknown as Json, patch as unknown as Json) as unknown as K8sObject;
    }
  }
  if (typeof k.namespace === "string") {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata = { ...o.metadata, namespace: k.namespace };
  }
  if (Array.isArray(k.images)) applyImages(objects, k.images as unknown as Image[]);
  return objects;
}

function readObjectsLoose(file: string): Record<string, Json> {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  if (docs.length !== 1 || docs[0]!.errors.length > 0) throw new Error(`${file}: not one YAML document`);
  const value = docs[0]!.toJS() as unknown;
  if (!isObject(value)) throw new Error(`${file}: not a map`);
  return value;
}
