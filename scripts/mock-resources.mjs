// Writes on stdout, as one JSON document, every Patient, Practitioner, RelatedPerson,
// Observation, Encounter and Bundle that the @medplum/mock package installed under the
// directory given as argument exports (at any depth of its exported objects and arrays, and
// from its exported resource factories), plus the search Bundles its MockClient answers for
// each of those types. Run by scripts/test-fixtures; fails loudly when anything is missing.
import { pathToFileURL } from 'node:url';

const TYPES = ['Patient', 'Practitioner', 'RelatedPerson', 'Observation', 'Encounter', 'Bundle'];
const dir = process.argv[2];
if (!dir) {
  throw new Error('usage: node scripts/mock-resources.mjs INSTALL_DIR');
}
// Node 20 has no global WebSocket; @medplum/core only names it when it loads.
globalThis.WebSocket ??= class WebSocket {};
const mock = await import(
  pathToFileURL(`${dir}/node_modules/@medplum/mock/dist/esm/index.mjs`).href
);

const found = new Map();
function keep(value, from) {
  if (TYPES.includes(value.resourceType)) {
    const text = JSON.stringify(value);
    if (!found.has(text)) {
      found.set(text, { from, resource: value });
    }
  }
}
function visit(value, from, depth) {
  if (!value || typeof value !== 'object' || depth > 4) {
    return;
  }
  if (typeof value.resourceType === 'string') {
    keep(value, from);
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item === 'function' && /^get/.test(key) && item.length === 0) {
      visit(item(), `${from}.${key}()`, depth + 1);
    } else {
      visit(item, `${from}.${key}`, depth + 1);
    }
  }
}
for (const [name, value] of Object.entries(mock)) {
  visit(value, name, 0);
}
const client = new mock.MockClient();
for (const type of TYPES.filter((t) => t !== 'Bundle')) {
  const bundle = await client.search(type, '_count=1000');
  if (bundle.entry?.length) {
    keep(bundle, `MockClient.search(${type})`);
  }
}
const resources = [...found.values()];
for (const type of TYPES) {
  if (!resources.some((r) => r.resource.resourceType === type)) {
    throw new Error(`@medplum/mock gave no ${type}`);
  }
}
process.stdout.write(JSON.stringify({ package: '@medplum/mock', resources }) + '\n');
