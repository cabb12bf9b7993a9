/**
 * deploy/kubernetes: every object of the base and of the CloudNativePG
 * overlay, resolved as kustomize would (test/deploy/kustomize.ts), is
 * checked against the Kubernetes schemas (kubernetes-models' validators:
 * types, required fields, enums, formats) and for fields that no
 * Kubernetes type has (the validators let unknown fields pass, so a typo
 * such as readOnlyRootFileSystem would), and against the operating rules:
 * replicas, gRPC health probes, disruption budgets, pod security, resources,
 * network policies, and settings that the binaries actually read and accept.
 * CloudNativePG's Cluster is a custom resource: its fields are checked
 * against the few of its schema that the overlay uses.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { loadBackupSettings } from "../../server/backup/settings.js";
import { loadConfig } from "../../server/config.js";
import { loadMasterdataConfig } from "../../server/masterdata/config.js";
import { build, containersOf, idOf, imageName, type Json, type K8sObject, podSpecOf } from "./kustomize.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BASE = join(REPO, "deploy/kubernetes/base");
const OVERLAY = join(REPO, "deploy/kubernetes/overlays/cloudnative-pg");
const builds = { base: build(BASE), "overlays/cloudnative-pg": build(OVERLAY) };

type Obj = Record<string, Json>;
type Container = Obj & { name: string; image: string; env?: Obj[]; ports?: Obj[]; volumeMounts?: Obj[]; command?: string[] };
const obj = (v: unknown): Obj => (v ?? {}) as Obj;
const list = (v: unknown): Obj[] => (v ?? []) as Obj[];

const workloads = (objects: K8sObject[]) => objects.filter((o) => podSpecOf(o) !== undefined);
const podLabels = (o: K8sObject): Record<string, string> => obj(obj(obj(o.spec).template).metadata).labels as Record<string, string>;
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>) => selector !== undefined && Object.entries(selector).every(([k, v]) => labels[k] === v);
const deployment = (objects: K8sObject[], name: string) => {
  const d = objects.find((o) => o.kind === "Deployment" && o.metadata.name === name);
  if (!d) throw new Error(`no Deployment ${name}`);
  return d;
};
const container = (o: K8sObject, name: string) => {
  const c = containersOf(o).find((x) => x.name === name);
  if (!c) throw new Error(`${o.metadata.name} has no container ${name}`);
  return c as Container;
};
const portOf = (hostPort: string) => Number(hostPort.slice(hostPort.lastIndexOf(":") + 1));
const envValue = (c: Container, name: string) => {
  const e = (c.env ?? []).find((x) => x.name === name);
  if (!e || typeof e.value !== "string") throw new Error(`${c.name}: no literal ${name}`);
  return e.value;
};

// --- the Kubernetes schemas ------------------------------------------------

/** kubernetes-models' class for an apiVersion and kind, or undefined for a kind it does not know (custom resources). */
async function modelOf(o: K8sObject): Promise<(new (data: unknown) => { validate(): void }) | undefined> {
  const path = `${o.apiVersion}/${o.kind}`;
  try {
    const mod = (await import(`kubernetes-models/${path}`)) as Record<string, new (data: unknown) => { validate(): void }>;
    return mod[o.kind];
  } catch {
    return undefined;
  }
}

/** Every property name of every Kubernetes type (kubernetes-models' declarations). */
function knownFields(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".d.ts")) for (const m of readFileSync(path, "utf8").matchAll(/^\s*"([^"]+)"\??:/gm)) names.add(m[1]!);
    }
  };
  walk(join(REPO, "node_modules/kubernetes-models"));
  walk(join(REPO, "node_modules/@kubernetes-models/apimachinery"));
  return names;
}

/** Maps whose keys are the user's (labels, data, resource quantities), not fields of a type. */
const FREE_FORM = new Set(["labels", "annotations", "matchLabels", "data", "stringData", "nodeSelector", "requests", "limits", "parameters"]);

function unknownFields(value: Json, known: Set<string>, path: string, out: string[]): void {
  if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, known, `${path}[${i}]`, out));
  else if (value !== null && typeof value === "object") {
    for (const [key, v] of Object.entries(value)) {
      if (!known.has(key)) out.push(`${path}.${key}`);
      // A Service's selector is a plain label map.
      const plain = FREE_FORM.has(key) || (key === "selector" && v !== null && typeof v === "object" && Object.values(v).every((x) => typeof x === "string"));
      if (!plain) unknownFields(v, known, `${path}.${key}`, out);
    }
  }
}

/**
 * The part of CloudNativePG's Cluster (postgresql.cnpg.io/v1) the overlay
 * uses, from its API reference; its fields beyond these are refused here so
 * that nothing unchecked slips in.
 */
async function cnpgClusterProblems(o: K8sObject): Promise<string[]> {
  const problems: string[] = [];
  const spec = obj(o.spec);
  const allowed: Record<string, (v: Json) => boolean> = {
    instances: (v) => Number.isInteger(v) && (v as number) >= 1,
    primaryUpdateStrategy: (v) => v === "unsupervised" || v === "supervised",
    enableSuperuserAccess: (v) => typeof v === "boolean",
    bootstrap: (v) => {
      const initdb = obj(obj(v).initdb);
      return Object.keys(obj(v)).join() === "initdb" && typeof initdb.database === "string" && typeof initdb.owner === "string" && Object.keys(initdb).every((k) => ["database", "owner", "secret"].includes(k));
    },
    postgresql: (v) => Object.keys(obj(v)).join() === "parameters" && Object.values(obj(obj(v).parameters)).every((p) => typeof p === "string"),
    storage: (v) => Object.keys(obj(v)).every((k) => ["size", "storageClass"].includes(k)) && /^\d+(\.\d+)?(Ki|Mi|Gi|Ti)$/.test(String(obj(v).size)),
    affinity: (v) => Object.keys(obj(v)).every((k) => ["enablePodAntiAffinity", "topologyKey"].includes(k)) && typeof obj(v).enablePodAntiAffinity === "boolean",
    resources: () => true,
  };
  for (const [key, value] of Object.entries(spec)) {
    const check = allowed[key];
    if (!check) problems.push(`spec.${key} is not a field this test knows of Cluster`);
    else if (!check(value)) problems.push(`spec.${key} is not valid: ${JSON.stringify(value)}`);
  }
  if (spec.instances === undefined || spec.storage === undefined) problems.push("spec.instances and spec.storage are required");
  // The resources are a plain ResourceRequirements, which kubernetes-models knows.
  if (spec.resources !== undefined) {
    const { ResourceRequirements } = await import("kubernetes-models/v1/ResourceRequirements");
    try {
      new ResourceRequirements(spec.resources as never).validate();
    } catch (err) {
      problems.push(`spec.resources: ${(err as Error).message}`);
    }
  }
  return problems;
}

describe.each(Object.entries(builds))("deploy/kubernetes/%s", (_name, objects) => {
  const known = knownFields();

  it("validates every object against its Kubernetes schema, with no field Kubernetes does not have", async () => {
    expect(objects.length).toBeGreaterThan(10);
    const problems: string[] = [];
    for (const o of objects) {
      if (o.apiVersion === "postgresql.cnpg.io/v1" && o.kind === "Cluster") {
        problems.push(...(await cnpgClusterProblems(o)).map((p) => `${idOf(o)}: ${p}`));
        continue;
      }
      const Model = await modelOf(o);
      if (!Model) {
        problems.push(`${idOf(o)}: no schema for ${o.apiVersion} ${o.kind}`);
        continue;
      }
      try {
        new Model(o).validate();
      } catch (err) {
        problems.push(`${idOf(o)}: ${(err as Error).message}`);
      }
      const unknown: string[] = [];
      unknownFields(o as unknown as Json, known, o.kind, unknown);
      problems.push(...unknown.map((u) => `${idOf(o)}: unknown field ${u}`));
    }
    expect(problems).toEqual([]);
  });

  it("runs metal-api and masterdata-api as 2+ replicas, rolled one at a time, probed over the gRPC health protocol on their API port", () => {
    for (const [name, listen] of [
      ["metal-api", "METAL_LISTEN"],
      ["masterdata-api", "MASTERDATA_LISTEN"],
    ] as const) {
      const d = deployment(objects, name);
      const spec = obj(d.spec);
      expect(spec.replicas as number, name).toBeGreaterThanOrEqual(2);
      expect(obj(obj(spec.strategy).rollingUpdate).maxUnavailable, name).toBe(0);
      const c = container(d, name);
      const port = portOf(envValue(c, listen));
      expect(list(c.ports).map((p) => p.containerPort)).toContain(port);
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        expect(obj(c[probe]).grpc, `${name} ${probe}`).toEqual({ port });
      }
      // A failover of the database (seconds) must not restart every replica: liveness gives it a minute and more.
      const live = obj(c.livenessProbe);
      expect((live.periodSeconds as number) * (live.failureThreshold as number)).toBeGreaterThanOrEqual(60);
    }
  });

  it("gives every replicated Deployment a PodDisruptionBudget that selects its pods and only them, and lets a node drain", () => {
    const pdbs = objects.filter((o) => o.kind === "PodDisruptionBudget");
    const deployments = objects.filter((o) => o.kind === "Deployment");
    for (const d of deployments.filter((x) => (obj(x.spec).replicas as number) >= 2)) {
      const replicas = obj(d.spec).replicas as number;
      const matching = pdbs.filter((p) => selects(obj(obj(p.spec).selector).matchLabels as Record<string, string>, podLabels(d)));
      expect(
        matching.map((p) => p.metadata.name),
        d.metadata.name,
      ).toHaveLength(1);
      const pdb = obj(matching[0]!.spec);
      const others = deployments.filter((x) => x !== d && selects(obj(pdb.selector).matchLabels as Record<string, string>, podLabels(x)));
      expect(
        others.map((x) => x.metadata.name),
        `${d.metadata.name}'s budget selects other pods`,
      ).toEqual([]);
      const allowed = pdb.maxUnavailable !== undefined ? (pdb.maxUnavailable as number) : replicas - (pdb.minAvailable as number);
      expect(allowed).toBeGreaterThanOrEqual(1);
      expect(allowed).toBeLessThan(replicas);
    }
  });

  it("runs every pod non-root, without privileges, on a read-only root filesystem with resources set", () => {
    for (const w of workloads(objects)) {
      const pod = podSpecOf(w)!;
      const where = w.metadata.name;
      expect(obj(pod.securityContext).runAsNonRoot, where).toBe(true);
      expect(obj(pod.securityContext).runAsUser as number, where).toBeGreaterThan(0);
      expect(obj(obj(pod.securityContext).seccompProfile).type, where).toBe("RuntimeDefault");
      expect(pod.automountServiceAccountToken, where).toBe(false);
      for (const key of ["hostNetwork", "hostPID", "hostIPC"]) expect(pod[key], where).toBeUndefined();
      // The volume kinds the restricted Pod Security Standard allows, minus those these pods do not need.
      for (const v of list(pod.volumes))
        expect(
          Object.keys(v).filter((k) => k !== "name"),
          `${where} volume ${v.name}`,
        ).toSatisfy((keys: string[]) => keys.length === 1 && ["emptyDir", "configMap", "secret"].includes(keys[0]!));
      for (const c of containersOf(w) as Container[]) {
        const at = `${where}/${c.name}`;
        const sc = obj(c.securityContext);
        expect(sc.allowPrivilegeEscalation, at).toBe(false);
        expect(sc.readOnlyRootFilesystem, at).toBe(true);
        expect(sc.runAsNonRoot, at).toBe(true);
        expect(sc.privileged, at).toBeUndefined();
        expect(obj(sc.capabilities), at).toEqual({ drop: ["ALL"] });
        const res = obj(c.resources);
        expect(Object.keys(obj(res.requests)).sort(), at).toEqual(["cpu", "memory"]);
        expect(obj(res.limits).memory, at).toBeDefined();
        // Images are pinned to a tag (kustomize's images may add a digest).
        expect(c.image, at).toMatch(/^[^:@]+(:[\w][\w.-]*)?(@sha256:[0-9a-f]{64})?$/);
        expect(c.image, at).not.toMatch(/:latest$/);
        expect(c.image.includes(":") || c.image.includes("@"), `${at} has no tag`).toBe(true);
      }
    }
  });

  it("gives every directory a metal bin writes a writable volume (the root filesystem is read-only)", () => {
    for (const w of workloads(objects)) {
      const pod = podSpecOf(w)!;
      const writable = new Set(
        list(pod.volumes)
          .filter((v) => v.emptyDir !== undefined)
          .map((v) => v.name),
      );
      for (const c of containersOf(w) as Container[]) {
        const mounts = list(c.volumeMounts)
          .filter((m) => writable.has(m.name as string) && m.readOnly !== true)
          .map((m) => m.mountPath as string);
        const below = (path: string) => mounts.some((m) => path === m || path.startsWith(`${m}/`));
        const dirs = (c.env ?? []).filter((e) => /_DIR$/.test(e.name as string) && typeof e.value === "string").map((e) => e.value as string);
        if (isMetal(c)) expect(mounts, `${w.metadata.name}/${c.name} has no writable /tmp`).toContain("/tmp");
        for (const d of dirs) expect(below(d), `${w.metadata.name}/${c.name}: ${d} is on the read-only root filesystem`).toBe(true);
      }
    }
  });

  it("sends each Service to exactly one Deployment's pods, on ports those pods have", () => {
    const deployments = objects.filter((o) => o.kind === "Deployment");
    for (const s of objects.filter((o) => o.kind === "Service")) {
      const selector = obj(s.spec).selector as Record<string, string>;
      const targets = deployments.filter((d) => selects(selector, podLabels(d)));
      expect(
        targets.map((d) => d.metadata.name),
        s.metadata.name,
      ).toHaveLength(1);
      const ports = containersOf(targets[0]!).flatMap((c) => list((c as Container).ports));
      for (const p of list(obj(s.spec).ports)) {
        const target = p.targetPort ?? p.port;
        expect(
          ports.some((cp) => cp.name === target || cp.containerPort === target),
          `${s.metadata.name} -> ${String(target)}`,
        ).toBe(true);
      }
    }
    // The SSH console has its own Service, on the port metal-api's console listens on.
    const api = container(deployment(objects, "metal-api"), "metal-api");
    const consolePort = list(api.ports).find((p) => p.containerPort === portOf(envValue(api, "METAL_CONSOLE_LISTEN")));
    const console = objects.find((o) => o.kind === "Service" && list(obj(o.spec).ports).some((p) => p.targetPort === consolePort?.name));
    expect(console?.metadata.name).toBe("metal-console");
    // metal-api reaches masterdata-api through its Service, on the port masterdata-api listens on.
    const masterdata = new URL(envValue(api, "MASTERDATA_URL"));
    const mdService = objects.find((o) => o.kind === "Service" && o.metadata.name === masterdata.hostname);
    expect(list(obj(mdService?.spec).ports).map((p) => p.port)).toContain(Number(masterdata.port));
    expect(portOf(envValue(container(deployment(objects, "masterdata-api"), "masterdata-api"), "MASTERDATA_LISTEN"))).toBe(Number(masterdata.port));
  });

  it("denies all traffic to and from the control plane's pods but what its NetworkPolicies allow, and allows what they need", () => {
    const policies = objects.filter((o) => o.kind === "NetworkPolicy");
    const deployments = objects.filter((o) => o.kind === "Deployment");
    const deny = policies.find((p) => {
      const spec = obj(p.spec);
      return spec.ingress === undefined && spec.egress === undefined && JSON.stringify(spec.policyTypes) === JSON.stringify(["Ingress", "Egress"]);
    });
    expect(deny, "a default-deny policy").toBeDefined();
    const policiesOf = (d: K8sObject) => policies.filter((p) => selects(obj(obj(p.spec).podSelector).matchLabels as Record<string, string>, podLabels(d)));
    for (const d of deployments) expect(policiesOf(d), `${d.metadata.name} is under the default deny`).toContain(deny);

    /** Whether `from`'s egress and `to`'s ingress let a connection to `port` through. */
    const allowed = (from: K8sObject, to: K8sObject, port: number): boolean => {
      const toPorts = containersOf(to).flatMap((c) => list((c as Container).ports));
      const portMatches = (ports: Obj[] | undefined) => ports === undefined || ports.some((p) => p.port === port || toPorts.some((cp) => cp.name === p.port && cp.containerPort === port));
      const peerMatches = (peers: Obj[] | undefined, peer: K8sObject) =>
        peers === undefined || peers.some((x) => x.namespaceSelector === undefined && x.ipBlock === undefined && selects(obj(x.podSelector).matchLabels as Record<string, string>, podLabels(peer)));
      const out = policiesOf(from).some((p) => list(obj(p.spec).egress).some((r) => peerMatches(r.to as Obj[] | undefined, to) && portMatches(r.ports as Obj[] | undefined)));
      const inn = policiesOf(to).some((p) => list(obj(p.spec).ingress).some((r) => peerMatches(r.from as Obj[] | undefined, from) && portMatches(r.ports as Obj[] | undefined)));
      return out && inn;
    };
    const api = deployment(objects, "metal-api");
    const md = deployment(objects, "masterdata-api");
    const mqtt = deployment(objects, "metal-mqtt");
    const backup = deployment(objects, "metal-backup");
    expect(allowed(api, md, 8081), "metal-api -> masterdata-api").toBe(true);
    expect(allowed(api, mqtt, 1883), "metal-api -> broker").toBe(true);
    expect(allowed(api, api, 8080), "replica -> replica").toBe(true);
    expect(allowed(md, api, 8080), "masterdata-api -> metal-api").toBe(false);
    expect(allowed(backup, mqtt, 1883), "backup -> broker").toBe(false);
    expect(allowed(mqtt, api, 8080), "broker -> metal-api").toBe(false);
    expect(allowed(api, backup, 8080), "nothing reaches the backup").toBe(false);
    // Only the public API takes traffic from outside the namespace: every ingress rule of the other pods
    // names its peers, as pods of this namespace (no namespaceSelector, no ipBlock, never "from anywhere").
    for (const d of [md, mqtt, backup]) {
      for (const p of policiesOf(d)) {
        for (const r of list(obj(p.spec).ingress)) {
          const from = r.from as Obj[] | undefined;
          expect(from?.length, `${d.metadata.name}: ${p.metadata.name} lets anyone in`).toBeGreaterThan(0);
          for (const peer of from ?? []) expect(Object.keys(peer), `${d.metadata.name}: ${p.metadata.name}`).toEqual(["podSelector"]);
        }
      }
    }
    // Named ports in the policies are ports of the pods they select.
    for (const p of policies) {
      const selected = deployments.filter((d) => selects(obj(obj(p.spec).podSelector).matchLabels as Record<string, string>, podLabels(d)));
      const names = new Set(selected.flatMap((d) => containersOf(d).flatMap((c) => list((c as Container).ports).map((x) => x.name))));
      for (const r of list(obj(p.spec).ingress)) for (const port of list(r.ports)) if (typeof port.port === "string") expect(names.has(port.port), `${p.metadata.name}: port ${port.port}`).toBe(true);
    }
  });

  it("sets only settings the binaries read, and they accept them", () => {
    const tmp = mkdtempSync(join(tmpdir(), "metal-deploy-"));
    try {
      for (const w of workloads(objects)) {
        for (const c of (containersOf(w) as Container[]).filter(isMetal)) {
          const bin = binOf(c);
          const names = settingNames(bin);
          const env = resolveEnv(w, c, tmp);
          const helpers = new Set(["POD_IP", "POD_NAME"]);
          for (const name of Object.keys(env)) {
            if (helpers.has(name)) {
              // A helper exists only to be named in another value.
              expect(Object.values(env).some((v) => v.includes(`$(${name})`)) || (c.env ?? []).some((e) => String(e.value ?? "").includes(`$(${name})`)), `${name} unused`).toBe(true);
              continue;
            }
            expect(names, `${w.metadata.name}/${c.name}: ${name} is not a setting of ${bin}`).toContain(name);
          }
          expect(() => loaders[bin](env), `${w.metadata.name}/${c.name}`).not.toThrow();
        }
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("restores an empty installation from the newest backup before anything migrates the databases", () => {
    const steps = ["metal-api", "masterdata-api"].map((name) => {
      const pod = podSpecOf(deployment(objects, name))!;
      const inits = list(pod.initContainers) as Container[];
      expect(
        inits.map((c) => c.name),
        name,
      ).toEqual(["restore"]);
      expect([...(inits[0]!.command ?? []), ...((inits[0]!.args as string[] | undefined) ?? [])], name).toEqual(["metal-backup", "restore", "--if-empty"]);
      return inits[0]!;
    });
    // The same step in both: whichever pod comes first restores, the others find data and go on.
    expect(steps[0]).toEqual(steps[1]);
    const run = container(deployment(objects, "metal-backup"), "metal-backup");
    expect(run.args).toEqual(["run"]);
    // It reads the backups the scheduled ones write: same targets, same key.
    const target = (c: Container) => (c.env ?? []).filter((e) => /^METAL_BACKUP_(S3_|KEY_FILE)/.test(e.name as string));
    expect(target(steps[0]!)).toEqual(target(run));
  });

  it("runs every metal bin from one image (metal, or metal-backup for pg_dump), all of one tag", () => {
    const images = workloads(objects).flatMap((w) => (containersOf(w) as Container[]).filter(isMetal).map((c) => ({ bin: binOf(c), image: c.image })));
    expect([...new Set(images.map((i) => i.bin))].sort()).toEqual(["masterdata-api", "metal-api", "metal-backup"]);
    for (const i of images) expect(imageName(i.image).split("/").pop(), i.bin).toBe(i.bin === "metal-backup" ? "metal-backup" : "metal");
    expect(new Set(images.map((i) => i.image.slice(imageName(i.image).length))).size).toBe(1);
    // The tag is the package's version unless an overlay says otherwise.
    const version = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version as string;
    expect(images[0]!.image.endsWith(`:${version}`)).toBe(true);
  });
});

describe("deploy/kubernetes/overlays/cloudnative-pg", () => {
  const objects = builds["overlays/cloudnative-pg"];

  it("puts everything in one namespace that enforces the restricted Pod Security Standard", () => {
    const ns = objects.find((o) => o.kind === "Namespace");
    expect(ns?.metadata.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    for (const o of objects.filter((x) => x.kind !== "Namespace")) expect(o.metadata.namespace, idOf(o)).toBe(ns?.metadata.name);
  });

  it("carries the Grafana dashboard and the alerting rules as ConfigMaps, as they are in deploy/, small enough for kubectl apply", () => {
    const configMap = (name: string) => objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === name);
    const dashboard = configMap("metal-grafana-dashboard");
    expect(dashboard?.metadata.labels?.grafana_dashboard).toBe("1");
    const json = obj(dashboard?.data)["metal-dashboard.json"] as string;
    expect(json).toBe(readFileSync(join(REPO, "deploy/grafana/metal-dashboard.json"), "utf8"));
    expect(JSON.parse(json).uid).toBeTruthy();
    const rules = obj(configMap("metal-prometheus-rules")?.data)["alerts.yaml"] as string;
    expect(rules).toBe(readFileSync(join(REPO, "deploy/prometheus/alerts.yaml"), "utf8"));
    expect(parseAllDocuments(rules)[0]!.toJS().groups.length).toBeGreaterThan(0);
    // kubectl apply (client side) keeps the whole object in an annotation of at most 256 KiB.
    for (const text of [json, rules]) expect(Buffer.byteLength(text)).toBeLessThan(200 * 1024);
  });

  it("points every database setting at a CloudNativePG cluster's application Secret", () => {
    const clusters = new Set(objects.filter((o) => o.kind === "Cluster").map((o) => o.metadata.name));
    expect([...clusters].sort()).toEqual(["masterdata-db", "metal-db"]);
    const byDatabase: Record<string, string> = { DATABASE_URL: "metal-db", METAL_DATABASE_URL: "metal-db", MASTERDATA_DATABASE_URL: "masterdata-db" };
    let refs = 0;
    for (const w of workloads(objects)) {
      for (const c of containersOf(w) as Container[]) {
        for (const e of c.env ?? []) {
          const ref = obj(obj(e.valueFrom).secretKeyRef);
          if (!(e.name as string).endsWith("DATABASE_URL")) continue;
          refs++;
          // CloudNativePG's <cluster>-app Secret; "uri" is the whole connection URL.
          expect(ref, `${w.metadata.name}/${c.name} ${e.name}`).toEqual({ name: `${byDatabase[e.name as string]}-app`, key: "uri" });
        }
      }
    }
    // metal-api, masterdata-api (2), metal-backup (2), and the restore step of both APIs (2 each).
    expect(refs).toBe(9);
  });
});

describe("deploy/kubernetes/base", () => {
  it("gives masterdata-api's server a reader's URL of the metal database, never the owner's that metal-api has", () => {
    const md = container(deployment(builds.base, "masterdata-api"), "masterdata-api");
    const api = container(deployment(builds.base, "metal-api"), "metal-api");
    const secretOf = (c: Container, name: string) => obj(obj((c.env ?? []).find((e) => e.name === name)?.valueFrom).secretKeyRef).name;
    // The owner could read the private signing keys: a compromised masterdata-api would mint any token.
    expect(secretOf(md, "METAL_DATABASE_URL")).toBe("metal-database-reader");
    expect(secretOf(api, "DATABASE_URL")).toBe("metal-database");
    expect(JSON.stringify(md)).not.toMatch(/"metal-database"/);
  });

  it("names in docs/operations.md every Secret it needs, with its keys", () => {
    const doc = readFileSync(join(REPO, "docs/operations.md"), "utf8");
    const needed = new Map<string, Set<string>>();
    const need = (name: string, key: string) => needed.set(name, (needed.get(name) ?? new Set()).add(key));
    for (const w of workloads(builds.base)) {
      for (const c of containersOf(w) as Container[])
        for (const e of c.env ?? []) {
          const ref = obj(obj(e.valueFrom).secretKeyRef);
          if (ref.name) need(ref.name as string, ref.key as string);
        }
      for (const v of list(podSpecOf(w)!.volumes)) if (v.secret) for (const item of list(obj(v.secret).items)) need(obj(v.secret).secretName as string, item.key as string);
    }
    expect([...needed.keys()].sort()).toEqual(["masterdata-database", "metal-backup", "metal-database", "metal-database-reader", "metal-mqtt"]);
    for (const [name, keys] of needed) {
      // `kubectl create secret generic NAME --from-literal=KEY=…` (or --from-file) for each.
      const command = doc.match(new RegExp(`kubectl -n metal create secret generic ${name}\\b(?:[^\\n]*\\\\\\n)*[^\\n]*`))?.[0] ?? "";
      expect(command, `docs/operations.md shows how to create ${name}`).not.toBe("");
      for (const key of keys) expect(command, `${name} key ${key}`).toMatch(new RegExp(`--from-(literal|file)=${key}=`));
    }
  });

  it("lets metal-api's broker user use its topics, and metal-api connect as it", () => {
    const cm = builds.base.find((o) => o.kind === "ConfigMap" && o.metadata.name === "metal-mqtt")!;
    const acl = obj(cm.data).acl as string;
    expect(acl).toMatch(/^user metal$/m);
    // The default topic prefix, as metal-api uses it.
    expect(acl).toMatch(new RegExp(`^topic readwrite ${loadConfig({}, []).mqttTopicPrefix}/#$`, "m"));
    const init = containersOf(deployment(builds.base, "metal-mqtt")).find((c) => c.name === "passwd") as Container;
    expect((init.command ?? []).join(" ")).toContain(" metal ");
  });

  it("builds the same objects as kubectl kustomize, where kubectl is installed", (ctx) => {
    const probe = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
    if (probe.error || probe.status !== 0) ctx.skip("kubectl is not installed here: the resolver in test/deploy/kustomize.ts is checked only by the other tests");
    for (const [dir, objects] of [
      [BASE, builds.base],
      [OVERLAY, builds["overlays/cloudnative-pg"]],
    ] as const) {
      const out = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
      expect(out.status, out.stderr).toBe(0);
      const theirs = parseAllDocuments(out.stdout).map((d) => d.toJS() as K8sObject);
      const byId = (xs: K8sObject[]) => Object.fromEntries(xs.map((o) => [idOf(o), o]));
      expect(byId(objects)).toEqual(byId(theirs));
    }
  });
});

// --- settings -----------------------------------------------------------------

type Bin = "metal-api" | "masterdata-api" | "metal-backup";
const isMetal = (c: Container) => ["metal", "metal-backup"].includes(imageName(c.image).split("/").pop()!);
/** The bin a container of the metal image runs: its command, or the image's entrypoint. */
function binOf(c: Container): Bin {
  const bin = c.command?.[0] ?? (imageName(c.image).endsWith("metal-backup") ? "metal-backup" : "metal-api");
  if (bin !== "metal-api" && bin !== "masterdata-api" && bin !== "metal-backup") throw new Error(`${c.name} runs ${bin}`);
  return bin;
}

const SETTINGS_SOURCES: Record<Bin, string> = {
  "metal-api": "server/config.ts",
  "masterdata-api": "server/masterdata/config.ts",
  "metal-backup": "server/backup/settings.ts",
};

/** The environment variables a bin reads: its settings table, and secrets it reads as VAR or VAR_FILE. */
function settingNames(bin: Bin): string[] {
  const source = readFileSync(join(REPO, SETTINGS_SOURCES[bin]), "utf8");
  const names = [...source.matchAll(/env:\s*"([A-Z][A-Z0-9_]*)"/g)].map((m) => m[1]!);
  for (const m of source.matchAll(/readSecret\(env,\s*"([A-Z][A-Z0-9_]*)"\)/g)) names.push(m[1]!, `${m[1]}_FILE`);
  return names;
}

const loaders: Record<Bin, (env: Record<string, string>) => unknown> = {
  "metal-api": (env) => loadConfig(env, []),
  "masterdata-api": (env) => loadMasterdataConfig(env, []),
  "metal-backup": (env) => loadBackupSettings(env, []),
};

/**
 * The container's environment as Kubernetes would hand it over: literal
 * values with $(VAR) of earlier variables expanded (later ones are not:
 * that is a mistake, and fails here), Secrets' values replaced by values of
 * their kind, files of mounted Secrets made in `tmp`.
 */
function resolveEnv(w: K8sObject, c: Container, tmp: string): Record<string, string> {
  const pod = podSpecOf(w)!;
  const mounts = new Map<string, string>();
  for (const m of list(c.volumeMounts)) {
    const volume = list(pod.volumes).find((v) => v.name === m.name);
    if (!volume?.secret) continue;
    const dir = mkdtempSync(join(tmp, "secret-"));
    for (const item of list(obj(volume.secret).items)) writeFileSync(join(dir, item.path as string), "placeholder\n");
    mounts.set(m.mountPath as string, dir);
  }
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const name = e.name as string;
    let value: string;
    if (typeof e.value === "string") {
      value = e.value.replace(/\$\(([A-Z_][A-Z0-9_]*)\)/g, (_, ref: string) => {
        if (!(ref in env)) throw new Error(`${c.name}: ${name} names $(${ref}) before it is defined`);
        return env[ref]!;
      });
      for (const [mountPath, dir] of mounts) if (value.startsWith(`${mountPath}/`)) value = join(dir, posix.relative(mountPath, value));
    } else {
      const from = obj(e.valueFrom);
      const field = obj(from.fieldRef).fieldPath;
      if (field === "status.podIP") value = "10.1.2.3";
      else if (field === "metadata.name") value = `${w.metadata.name}-7d9f8c6b5-x2x9z`;
      else if (from.secretKeyRef) value = secretPlaceholder(name);
      else throw new Error(`${c.name}: ${name} comes from ${JSON.stringify(from)}`);
    }
    env[name] = value;
  }
  return env;
}

function secretPlaceholder(name: string): string {
  if (name.endsWith("DATABASE_URL")) return "postgresql://user:password@db.invalid:5432/db";
  if (name === "MQTT_URL") return "mqtt://metal:password@metal-mqtt:1883";
  if (name.endsWith("_ENDPOINT")) return "https://objects.invalid";
  return "placeholder";
}
