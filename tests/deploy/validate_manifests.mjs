// Validates rendered manifests (`kubectl kustomize` output, one file per
// overlay) against the Kubernetes API schemas (kubernetes-models, generated
// from Kubernetes' OpenAPI), then checks what the schemas cannot: that the
// stages are wired to each other and to their probes, volumes and budgets
// the way docs and README promise.
// Usage: node validate_manifests.mjs OVERLAY=FILE...
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ConfigMap, PersistentVolumeClaim, Service } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";

const MODELS = {
  "v1/ConfigMap": ConfigMap,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};
const STAGES = { preprocessor: "predictor", predictor: "postprocessor", postprocessor: null };

let failures = 0;
function check(ok, what) {
  if (!ok) {
    failures++;
    console.log(`FAIL ${what}`);
  }
}

function argValue(args, flag) {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

function checkOverlay(overlay, docs) {
  const byKind = {};
  for (const doc of docs) {
    const key = `${doc.apiVersion}/${doc.kind}`;
    const Model = MODELS[key];
    check(Model, `${overlay}: ${key} ${doc.metadata?.name} has no schema here (unexpected kind)`);
    if (Model) {
      try {
        new Model(doc).validate();
      } catch (e) {
        check(false, `${overlay}: ${doc.kind} ${doc.metadata.name}: ${e.message}`);
      }
    }
    (byKind[doc.kind] ??= {})[doc.metadata.name] = doc;
  }
  const settings = Object.values(byKind.ConfigMap ?? {}).find((c) => c.data?.STAGEWISE_DRAIN_TIMEOUT);
  check(settings, `${overlay}: a ConfigMap sets STAGEWISE_DRAIN_TIMEOUT`);
  const drain = Number(settings?.data?.STAGEWISE_DRAIN_TIMEOUT ?? 30);
  check(byKind.PersistentVolumeClaim?.["stagewise-model"], `${overlay}: the model volume claim exists`);

  for (const [stage, next] of Object.entries(STAGES)) {
    const name = `stagewise-${stage}`;
    const dep = byKind.Deployment?.[name];
    check(dep, `${overlay}: Deployment ${name}`);
    if (!dep) continue;
    const pod = dep.spec.template.spec;
    const c = pod.containers[0];
    const port = c.ports.find((p) => p.name === "grpc").containerPort;
    const listen = argValue(c.args, "--listen");
    check(listen === `0.0.0.0:${port}`, `${overlay}: ${name} listens on its grpc port (${listen})`);
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const p = c[probe];
      const ok = p && ((p.grpc && p.grpc.port === port) || (p.exec && p.exec.command.join(" ").includes(`localhost:${port}`)));
      check(ok, `${overlay}: ${name} ${probe} asks grpc.health.v1 on port ${port}`);
    }
    const pause = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
    check(pod.terminationGracePeriodSeconds > pause + drain,
          `${overlay}: ${name} grace period ${pod.terminationGracePeriodSeconds} s > preStop ${pause} s + drain ${drain} s`);
    check(c.resources?.requests?.cpu && c.resources?.limits?.memory, `${overlay}: ${name} has requests and limits`);
    const ann = dep.spec.template.metadata.annotations ?? {};
    check(ann["prometheus.io/scrape"] === "true" && argValue(c.args, "--metrics-listen")?.endsWith(`:${ann["prometheus.io/port"]}`),
          `${overlay}: ${name} is scraped where it serves metrics`);
    const mount = c.volumeMounts.find((m) => m.mountPath === "/models/export");
    const vol = mount && pod.volumes.find((v) => v.name === mount.name);
    check(mount?.readOnly && vol?.persistentVolumeClaim?.claimName === "stagewise-model",
          `${overlay}: ${name} mounts the export read-only`);
    check(c.securityContext?.readOnlyRootFilesystem && pod.securityContext?.runAsNonRoot,
          `${overlay}: ${name} runs as non-root on a read-only root`);
    check(c.envFrom?.some((e) => e.configMapRef?.name === settings?.metadata?.name),
          `${overlay}: ${name} takes its settings from the ConfigMap`);

    const labels = dep.spec.template.metadata.labels;
    const matches = (sel) => sel && Object.entries(sel).every(([k, v]) => labels[k] === v);
    const svc = byKind.Service?.[name];
    check(svc && svc.spec.clusterIP === "None", `${overlay}: ${name} has a headless Service`);
    check(svc && matches(svc.spec.selector) && svc.spec.ports.some((p) => p.port === port),
          `${overlay}: Service ${name} selects the pods and exposes port ${port}`);
    const hpa = byKind.HorizontalPodAutoscaler?.[name];
    check(hpa && hpa.spec.scaleTargetRef.name === name && hpa.spec.minReplicas >= 2,
          `${overlay}: ${name} has an autoscaler on its Deployment, at least 2 pods`);
    const pdb = byKind.PodDisruptionBudget?.[name];
    check(pdb && matches(pdb.spec.selector.matchLabels), `${overlay}: ${name} has a disruption budget over its pods`);

    const target = argValue(c.args, "--next");
    if (next) {
      const nextDep = byKind.Deployment?.[`stagewise-${next}`];
      const nextPort = nextDep?.spec.template.spec.containers[0].ports.find((p) => p.name === "grpc").containerPort;
      check(target === `dns:///stagewise-${next}:${nextPort}`,
            `${overlay}: ${name} --next resolves every ${next} pod through its headless Service (${target})`);
    } else {
      check(target === undefined, `${overlay}: ${name} is the last stage`);
    }
  }
  const pred = byKind.Deployment?.["stagewise-predictor"]?.spec.template.spec.containers[0];
  if (overlay.includes("gpu")) {
    check(pred?.resources?.limits?.["nvidia.com/gpu"] === "1" && argValue(pred.args, "--device") === "cuda",
          `${overlay}: the predictor asks for a GPU and runs on it`);
    check(pred?.image.includes("cuda"), `${overlay}: the predictor uses the CUDA image`);
  } else {
    check(!pred?.resources?.limits?.["nvidia.com/gpu"], `${overlay}: no GPU asked for`);
  }
  console.log(`${overlay}: ${docs.length} objects checked`);
}

for (const arg of process.argv.slice(2)) {
  const [overlay, file] = arg.split("=");
  const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
  checkOverlay(overlay, docs);
}
console.log(failures ? `${failures} problems` : "all manifests valid");
process.exit(failures ? 1 : 0);
