#!/usr/bin/env node
// `npm run docs`: TypeDoc reads the public entry points (typedoc.json) into build/typedoc.json; this
// script turns that into one markdown page per entry point in docs/api/ (GitHub renders markdown,
// not TypeDoc's HTML, and the pages stay small). Each export gets its signature and doc comment;
// interfaces list every option with its type and comment. A symbol re-exported by several entries is
// written once and linked from the others. Ends by counting public options without a doc comment
// (`--list` names them).
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const project = JSON.parse(fs.readFileSync(path.join(root, 'build', 'typedoc.json'), 'utf8'));
const outDir = path.join(root, 'docs', 'api');

const K = { Project: 1, Module: 2, Namespace: 4, Enum: 8, EnumMember: 16, Variable: 32, Function: 64, Class: 128, Interface: 256, Constructor: 512, Property: 1024, Method: 2048, Accessor: 262144, TypeAlias: 2097152, Reference: 4194304 };
const KIND_NAME = { 4: 'namespace', 8: 'enum', 32: 'const', 64: 'function', 128: 'class', 256: 'interface', 2097152: 'type' };
const ENTRY = { index: 'medgym', 'entries/env': 'medgym/env', 'entries/kernels': 'medgym/kernels', 'entries/policy': 'medgym/policy', 'entries/rewards': 'medgym/rewards' };
const fileOf = (spec) => `${spec.replace('/', '-')}.md`;

// Where each documented reflection lands: id -> { file, anchor }.
const byId = new Map();
const home = new Map();
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9_-]+/g, '-');

function walk(r, visit) {
  visit(r);
  for (const c of r.children ?? []) walk(c, visit);
}
walk(project, (r) => byId.set(r.id, r));

const modules = [...project.children].sort((a, b) => Object.keys(ENTRY).indexOf(a.name) - Object.keys(ENTRY).indexOf(b.name));
for (const m of modules) {
  const file = fileOf(ENTRY[m.name] ?? m.name);
  const place = (r, prefix) => {
    if (r.kind === K.Reference) return;
    const name = prefix ? `${prefix}.${r.name}` : r.name;
    home.set(r.id, { file, anchor: slug(name), name });
    if (r.kind === K.Namespace) for (const c of r.children ?? []) place(c, name);
  };
  for (const c of m.children ?? []) place(c, '');
}

const text = (parts) => (parts ?? []).map((p) => (p.kind === 'inline-tag' ? `\`${p.text}\`` : p.text)).join('').trim();
const summary = (r) => text(r?.comment?.summary) || text(r?.signatures?.[0]?.comment?.summary);
const oneLine = (s) => s.replace(/\s*\n\s*/g, ' ');

function link(id, name, fromFile) {
  const h = home.get(id);
  if (!h) return name;
  return `[${name}](${h.file === fromFile ? '' : h.file}#${h.anchor})`;
}

/** A TypeScript-like rendering of a TypeDoc type; `f` is the page being written (for links). */
function type(t, f, depth = 0) {
  if (!t) return 'unknown';
  switch (t.type) {
    case 'intrinsic':
      return t.name;
    case 'literal':
      return t.value === null ? 'null' : typeof t.value === 'string' ? JSON.stringify(t.value) : typeof t.value === 'object' ? `${t.value.value}n` : String(t.value);
    case 'reference': {
      const args = t.typeArguments?.length ? `<${t.typeArguments.map((a) => type(a, f, depth)).join(', ')}>` : '';
      const name = typeof t.target === 'number' && home.has(t.target) ? link(t.target, t.name, f) : t.name;
      return `${name}${args}`;
    }
    case 'union':
      return t.types.map((x) => type(x, f, depth)).join(' | ');
    case 'intersection':
      return t.types.map((x) => type(x, f, depth)).join(' & ');
    case 'array': {
      const e = type(t.elementType, f, depth);
      return /[|&]/.test(e) ? `(${e})[]` : `${e}[]`;
    }
    case 'tuple':
      return `[${(t.elements ?? []).map((x) => type(x, f, depth)).join(', ')}]`;
    case 'namedTupleMember':
      return `${t.name}: ${type(t.element, f, depth)}`;
    case 'optional':
      return `${type(t.elementType, f, depth)}?`;
    case 'rest':
      return `...${type(t.elementType, f, depth)}`;
    case 'typeOperator':
      return `${t.operator} ${type(t.target, f, depth)}`;
    case 'indexedAccess':
      return `${type(t.objectType, f, depth)}[${type(t.indexType, f, depth)}]`;
    case 'query':
      return `typeof ${type(t.queryType, f, depth)}`;
    case 'predicate':
      return t.targetType ? `${t.name} is ${type(t.targetType, f, depth)}` : `asserts ${t.name}`;
    case 'templateLiteral':
      return '`' + t.head + t.tail.map(([x, s]) => '${' + type(x, f, depth) + '}' + s).join('') + '`';
    case 'conditional':
      return `${type(t.checkType, f, depth)} extends ${type(t.extendsType, f, depth)} ? ${type(t.trueType, f, depth)} : ${type(t.falseType, f, depth)}`;
    case 'mapped':
      return `{ [${t.parameter} in ${type(t.parameterType, f, depth)}]: ${type(t.templateType, f, depth)} }`;
    case 'reflection': {
      const d = t.declaration;
      if (d.signatures?.length) return sig(d.signatures[0], f, depth, true);
      if (depth > 1) return '{ … }';
      const members = (d.children ?? []).map((c) => `${c.name}${c.flags?.isOptional ? '?' : ''}: ${type(c.type, f, depth + 1)}`);
      for (const s of d.indexSignatures ?? []) members.push(`[${s.parameters[0].name}: ${type(s.parameters[0].type, f, depth + 1)}]: ${type(s.type, f, depth + 1)}`);
      return `{ ${members.join('; ')} }`;
    }
    default:
      return t.name ?? t.type;
  }
}

function sig(s, f, depth = 0, arrow = false) {
  const ps = (s.parameters ?? []).map((p) => `${p.flags?.isRest ? '...' : ''}${p.name}${p.flags?.isOptional || p.defaultValue !== undefined ? '?' : ''}: ${type(p.type, f, depth + 1)}`);
  const tps = s.typeParameters?.length ? `<${s.typeParameters.map((p) => p.name).join(', ')}>` : '';
  return arrow ? `${tps}(${ps.join(', ')}) => ${type(s.type, f, depth + 1)}` : `${tps}(${ps.join(', ')}): ${type(s.type, f, depth + 1)}`;
}

const undocumented = [];
const code = (s) => `<code>${s.replace(/</g, '&lt;').replace(/\[([^\]]+)\]\(([^)]*)\)/g, '<a href="$2">$1</a>')}</code>`;

// An option whose type is an inline object literal (a zod-inferred config's sections, say) gets one
// row per field below its own (`sft.lr`), so the fields' doc comments show and count too.
const nestedObject = (t) => (t?.type === 'reflection' && !t.declaration.signatures?.length && t.declaration.children?.length ? t.declaration : null);

function memberRows(r, f, owner, prefix, rows) {
  const all = [...(r.children ?? [])].filter((c) => !c.flags?.isPrivate && !c.flags?.isProtected && !c.name.startsWith('#'));
  for (const c of all) {
    let t;
    const nested = c.kind === K.Property ? nestedObject(c.type) : null;
    if (c.kind === K.Method) t = (c.signatures ?? []).map((s) => sig(s, f)).join(' / ');
    else if (c.kind === K.Accessor) t = type(c.getSignature?.type, f);
    else if (c.kind === K.Constructor) t = sig(c.signatures?.[0] ?? {}, f);
    else if (nested) t = '{ … }';
    else t = type(c.type, f);
    const doc = oneLine(summary(c) || text(c.getSignature?.comment?.summary));
    if (!doc && c.kind === K.Property) undocumented.push(`${owner}.${prefix}${c.name}`);
    const name = `${c.flags?.isStatic ? 'static ' : ''}${c.flags?.isReadonly ? 'readonly ' : ''}${prefix}${c.name}${c.flags?.isOptional ? '?' : ''}`;
    rows.push(`| \`${name}\` | ${code(t).replace(/\|/g, '\\|')} | ${doc.replace(/\|/g, '\\|')} |`);
    if (nested) memberRows(nested, f, owner, `${prefix}${c.name}.`, rows);
  }
  for (const s of r.indexSignatures ?? []) rows.push(`| \`${prefix}[${s.parameters[0].name}: ${type(s.parameters[0].type, f)}]\` | ${code(type(s.type, f)).replace(/\|/g, '\\|')} | ${oneLine(text(s.comment?.summary))} |`);
}

function members(r, f, owner) {
  const rows = [];
  memberRows(r, f, owner, '', rows);
  return rows.length ? ['| name | type | |', '|---|---|---|', ...rows, ''] : [];
}

function render(r, f, prefix, out, level) {
  const name = prefix ? `${prefix}.${r.name}` : r.name;
  if (r.kind === K.Reference) {
    out.push(`- \`${r.name}\`: ${link(r.target, 'see ' + (home.get(r.target)?.name ?? r.name), f)}`);
    return;
  }
  out.push(`${'#'.repeat(level)} ${name}`, '');
  out.push(`<a id="${slug(name)}"></a>`, '');
  const kind = KIND_NAME[r.kind] ?? 'value';
  if (r.kind === K.Function) for (const s of r.signatures ?? []) out.push(`${code(`function ${r.name}${sig(s, f)}`)}`, '');
  else if (r.kind === K.Variable) out.push(code(`const ${r.name}: ${type(r.type, f)}`), '');
  else if (r.kind === K.TypeAlias) out.push(code(`type ${r.name} = ${type(r.type, f)}`), '');
  else if (r.kind === K.Interface || r.kind === K.Class) {
    const ext = (r.extendedTypes ?? []).map((t) => type(t, f)).join(', ');
    out.push(code(`${kind} ${r.name}${ext ? ` extends ${ext}` : ''}`), '');
  }
  const doc = text(r.comment?.summary) || (r.signatures ?? []).map((s) => text(s.comment?.summary)).filter(Boolean).join('\n\n');
  if (doc) out.push(doc, '');
  if (r.kind === K.Function) {
    for (const s of r.signatures ?? []) {
      const ps = (s.parameters ?? []).filter((p) => text(p.comment?.summary));
      for (const p of ps) out.push(`- \`${p.name}\`: ${oneLine(text(p.comment.summary))}`);
      if (ps.length) out.push('');
    }
  }
  if (r.kind === K.Interface || r.kind === K.Class) out.push(...members(r, f, name));
  if (r.kind === K.TypeAlias && r.type?.type === 'reflection' && r.type.declaration.children) out.push(...members(r.type.declaration, f, name));
  if (r.kind === K.Namespace) {
    const kids = [...(r.children ?? [])].sort((a, b) => a.name.localeCompare(b.name));
    const refs = kids.filter((c) => c.kind === K.Reference);
    if (refs.length) {
      out.push(`Members documented elsewhere: ${refs.map((c) => link(c.target, `\`${c.name}\``, f)).join(', ')}.`, '');
    }
    for (const c of kids.filter((c) => c.kind !== K.Reference)) render(c, f, name, out, Math.min(level + 1, 4));
  }
}

fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });
const index = ['# medgym API reference', '', 'Generated by `npm run docs` (TypeDoc, then scripts/api-docs.js) from the doc comments of the public entry points. Everything else in the package is internal and unreachable through its `exports` map.', ''];
for (const m of modules) {
  const spec = ENTRY[m.name] ?? m.name;
  const f = fileOf(spec);
  const out = [`# ${spec}`, ''];
  const head = text(m.comment?.summary);
  if (head) out.push(head, '');
  const kids = [...(m.children ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  const refs = kids.filter((c) => c.kind === K.Reference);
  const own = kids.filter((c) => c.kind !== K.Reference);
  out.push(`\`import { … } from '${spec}'\` (ES module) or \`require('${spec}')\` (CommonJS).`, '');
  if (own.length) out.push(`Exports: ${own.map((c) => `[\`${c.name}\`](#${slug(c.name)})`).join(', ')}.`, '');
  if (refs.length) out.push(`Also exported here, documented on another page: ${refs.map((c) => link(c.target, `\`${c.name}\``, f)).join(', ')}.`, '');
  for (const c of own) render(c, f, '', out, 2);
  fs.writeFileSync(path.join(outDir, f), out.join('\n').replace(/\n{3,}/g, '\n\n'));
  index.push(`- [\`${spec}\`](${f}): ${oneLine(head.split('\n\n')[0] ?? '') || `${own.length} exports`}`);
}
fs.writeFileSync(path.join(outDir, 'README.md'), index.join('\n') + '\n');
const size = fs.readdirSync(outDir).reduce((s, f) => s + fs.statSync(path.join(outDir, f)).size, 0);
console.log(`api-docs: ${modules.length} entry points → docs/api/ (${(size / 1024).toFixed(0)} KiB); ${undocumented.length} public options without a doc comment`);
if (process.argv.includes('--list')) for (const u of undocumented) console.log(`  ${u}`);
