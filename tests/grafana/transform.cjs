// Runs Grafana's own panel transformations (@grafana/data) on data frames.
// stdin: {"transformations": [...panel transformations...], "frames": [{"refId", "name",
//         "fields": [{"name", "type", "values"}]}]}
//         optional "frameMatchers": [...frame matcher configs, e.g. a Geomap layer's filterData...]
// stdout: {"frames": [{"refId", "name", "fields": [{"name", "type", "values"}]}],
//          "matched": [[indices of the output frames each frame matcher accepts], ...]}
// Usage: NODE_PATH=<dir with node_modules/@grafana/data> node transform.cjs
"use strict";
// @grafana/data reads browser globals when it loads; a bare object is enough here
globalThis.window = globalThis;
globalThis.navigator = { userAgent: "node" };

const gd = require("@grafana/data");

// the registry Grafana fills at start-up (one entry per transformer id)
const byId = new Map(Object.values(gd.standardTransformers).map((t) => [t.id, t]));
gd.standardTransformersRegistry.setInit(() =>
  [...byId.values()].map((t) => ({
    id: t.id, aliasIds: t.aliasIds, name: t.name, description: t.description,
    transformation: t, editor: () => null,
  })));

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const frames = input.frames.map((f) => gd.toDataFrame({
    refId: f.refId, name: f.name,
    fields: f.fields.map((field) => ({ name: field.name, type: field.type, values: field.values })),
  }));
  const out = await new Promise((resolve, reject) => {
    let last = [];
    gd.transformDataFrame(input.transformations, frames).subscribe({
      next: (value) => { last = value; }, error: reject, complete: () => resolve(last),
    });
  });
  // as a Geomap panel filters the data of each layer (getFrameMatchers on the panel's frames)
  const matched = (input.frameMatchers || []).map((config) => {
    const accepts = gd.getFrameMatchers(config);
    return out.flatMap((frame, index) => (accepts(frame) ? [index] : []));
  });
  process.stdout.write(JSON.stringify({
    matched,
    frames: out.map((f) => ({
      refId: f.refId ?? null, name: f.name ?? null,
      fields: f.fields.map((field) => ({
        name: field.name, type: field.type, values: Array.from(field.values),
      })),
    })),
  }));
}

main().catch((err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); });
