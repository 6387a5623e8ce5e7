/**
 * A structure-aware fuzzer built from the protocol's valibot schemas: {@link sample} makes a
 * well-formed value of a schema, {@link hostile} mutates it (a field replaced by NUL bytes,
 * lone surrogates, huge or negative numbers, deep nesting, wrong types, other parties' ids; a
 * field dropped or added), and {@link frame} may break the JSON itself. Deterministic for a seed.
 */
import type * as v from 'valibot';

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;

// valibot's schema objects, as far as the generator reads them.
interface Node {
  type: string;
  entries?: Record<string, Node>;
  options?: readonly (Node | string | number)[];
  literal?: unknown;
  wrapped?: Node;
  item?: Node;
  key?: Node;
  value?: Node;
}

/** Deeply nested arrays, for parsers that recurse. */
function nested(depth: number): unknown {
  let value: unknown = 'x';
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

/** Values no field should accept quietly. */
export function hostileValue(r: Rand, ids: readonly string[] = []): unknown {
  const choices: (() => unknown)[] = [
    () => 'a\u0000b',
    () => '\u0000',
    () => 'lone \ud800 surrogate',
    () => '\udfff',
    () => 'bell\u0007\u001b[31m',
    () => 'x'.repeat(1 + Math.floor(r() * 70_000)),
    () => '',
    () => -1,
    () => -1e308,
    () => 1e308,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => 2 ** 31,
    () => 0.5,
    () => '1e999',
    () => '-0',
    () => null,
    () => true,
    () => [],
    () => ({}),
    () => nested(2 + Math.floor(r() * 3000)),
    () => ({ __proto__: { polluted: true }, constructor: { prototype: { x: 1 } } }),
    () => Array.from({ length: 1 + Math.floor(r() * 2000) }, () => 'a'),
    () => '../../etc/passwd',
    () => "'; DROP TABLE jobs; --",
    () => '%00%ff',
    () => pick(r, ids.length > 0 ? ids : ['someone-else']),
  ];
  return pick(r, choices)();
}

/** A well-formed value of `schema` (best effort: pipes' checks are not read). */
export function sample(schema: v.GenericSchema, r: Rand, depth = 0): unknown {
  const node = schema as unknown as Node;
  switch (node.type) {
    case 'object':
    case 'strict_object':
    case 'loose_object': {
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(node.entries ?? {})) {
        if ((child.type === 'optional' || child.type === 'exact_optional') && r() < 0.5) continue;
        out[key] = sample(child as unknown as v.GenericSchema, r, depth + 1);
      }
      return out;
    }
    case 'variant':
    case 'union':
      return sample(pick(r, node.options as Node[]) as unknown as v.GenericSchema, r, depth + 1);
    case 'literal':
      return node.literal;
    case 'picklist':
      return pick(r, node.options ?? ['x']);
    case 'optional':
    case 'exact_optional':
    case 'nullable':
    case 'nullish':
      return node.type !== 'optional' && r() < 0.2 ? null : sample(node.wrapped as unknown as v.GenericSchema, r, depth + 1);
    case 'array':
      return depth > 6
        ? []
        : Array.from({ length: Math.floor(r() * 3) }, () => sample(node.item as unknown as v.GenericSchema, r, depth + 1));
    case 'record':
      return {};
    case 'string':
      return pick(r, ['abc', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'job1', 'm', 'tiny-chat']);
    case 'number':
      return pick(r, [0, 1, 7, 1000]);
    case 'bigint':
      return '1';
    case 'boolean':
      return r() < 0.5;
    default:
      return null;
  }
}

/** `value` with one hostile change somewhere in it. */
export function hostile(value: unknown, r: Rand, ids: readonly string[] = []): unknown {
  if (typeof value !== 'object' || value === null || r() < 0.1) return hostileValue(r, ids);
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value)
    ? [...(value as unknown[])]
    : { ...(value as Record<string, unknown>) };
  const keys = Object.keys(copy);
  const roll = r();
  if (keys.length === 0 || roll < 0.1) {
    (copy as Record<string, unknown>)[pick(r, ['extra', '__proto__', 'constructor', 'a\u0000b', 'v'])] = hostileValue(r, ids);
    return copy;
  }
  const key = pick(r, keys);
  if (roll < 0.2) {
    delete (copy as Record<string, unknown>)[key];
    return copy;
  }
  const child = (copy as Record<string, unknown>)[key];
  (copy as Record<string, unknown>)[key] =
    typeof child === 'object' && child !== null && r() < 0.5 ? hostile(child, r, ids) : hostileValue(r, ids);
  return copy;
}

/** The text to send for `value`: usually its JSON, sometimes broken JSON or not JSON at all. */
export function frame(value: unknown, r: Rand): string {
  const text = JSON.stringify(value) ?? 'null';
  const roll = r();
  if (roll < 0.03) return text.slice(0, Math.floor(r() * text.length));
  if (roll < 0.05) return text + '}'.repeat(1 + Math.floor(r() * 3));
  if (roll < 0.06) return '\u0000\u0001\u0002';
  if (roll < 0.07) return '['.repeat(100_000);
  return text;
}
