/**
 * Which files a graph's tensors read their bytes from (`TensorProto.external_data`'s
 * `location`), checked before any session sees the graph. onnxruntime reads a location it was
 * not handed from the file system, relative to the working directory for a graph loaded from
 * bytes: a hostile pinned graph naming `.env` or `keys/operator.json` would load that file into
 * its weights on the operator's machine. A graph may only name the data files the manifest
 * hands over, next to it, by their bare names (`model.onnx_data`, as published `onnx/` exports do).
 *
 * The walk reads the protobuf wire format directly (onnx.proto3 field numbers) and skips tensor
 * payloads by length, so a large graph costs one pass over its field headers and no copies.
 */
import { EngineError } from '../../../protocol/errors.ts';

/** A graph names external data that it may not read; nothing was loaded. */
export class ExternalDataError extends EngineError {
  /** `location`: what the graph names (empty when a tensor names none); `reason`: what is wrong with it. */
  constructor(modelId: string, location: string, reason: string, handed: readonly string[]) {
    super(
      `Loading model "${modelId}" was refused: its graph names external data "${location}", which ${reason}. A graph may only read the data files its manifest entry lists, ` +
        `next to the graph, by their bare names (${handed.length > 0 ? handed.join(', ') : 'this entry lists none'}). ` +
        'Nothing was loaded; fix the pinned graph or the manifest entry.',
      { modelId, location, reason, handed: [...handed] },
    );
  }
}

/** One tensor's external data reference. */
export interface ExternalReference {
  /** The tensor's name (empty when it has none). */
  tensor: string;
  /** Its `location`, or `undefined` when it is marked external but names no location. */
  location: string | undefined;
}

// Field numbers of onnx.proto3 messages that may hold tensors, by the message they lead to.
type Kind = 'model' | 'graph' | 'node' | 'attribute' | 'function' | 'training' | 'sparse' | 'tensor';
const CHILDREN: Record<Exclude<Kind, 'tensor'>, Readonly<Record<number, Kind>>> = {
  model: { 7: 'graph', 20: 'training', 25: 'function' },
  graph: { 1: 'node', 5: 'tensor', 15: 'sparse' },
  node: { 5: 'attribute' },
  attribute: { 5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse', 23: 'sparse' },
  function: { 7: 'node', 11: 'attribute' },
  training: { 1: 'graph', 2: 'graph' },
  sparse: { 1: 'tensor', 2: 'tensor' },
};
const TENSOR_NAME = 8;
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;
const DATA_LOCATION_EXTERNAL = 1;
/** Subgraphs nest (If/Loop bodies); deeper than this is refused rather than recursed into. */
const MAX_DEPTH = 64;

class MalformedGraph extends Error {}

/** Every tensor of an ONNX model (initializers, constants, subgraphs, functions) that refers to external data. */
export function externalReferences(model: Uint8Array): ExternalReference[] {
  const found: ExternalReference[] = [];
  walk(model, 0, model.length, 'model', 0, found);
  return found;
}

/**
 * Throws {@link ExternalDataError} unless every external data location in `graph` is the bare
 * name of one of `handed` (the files given to the session, by the path the graph uses); a graph
 * without external data passes.
 */
export function checkExternalData(modelId: string, graph: Uint8Array, handed: readonly string[]): void {
  let references: ExternalReference[];
  try {
    references = externalReferences(graph);
  } catch (err) {
    if (!(err instanceof MalformedGraph)) throw err;
    throw new EngineError(`Model "${modelId}" has a graph file that is not a valid ONNX model (${err.message}); nothing was loaded.`, {
      modelId,
    });
  }
  for (const { tensor, location } of references) {
    const refuse = (reason: string): never => {
      throw new ExternalDataError(modelId, location ?? '', `${reason} (tensor "${tensor}")`, handed);
    };
    if (location === undefined || location === '') refuse('is empty: the tensor is marked external but names no file');
    else if (location.startsWith('/') || location.startsWith('\\') || /^[a-zA-Z]:/.test(location)) refuse('is an absolute path');
    else if (location.split(/[/\\]/).includes('..')) refuse('leaves the graph’s folder (`..`)');
    else if (/[/\\]/.test(location)) refuse('is in another folder than the graph');
    else if (location.includes('\0')) refuse('contains a NUL character');
    else if (!handed.includes(location)) refuse('is not a file the manifest entry lists');
  }
}

function walk(bytes: Uint8Array, start: number, end: number, kind: Kind, depth: number, found: ExternalReference[]): void {
  if (depth > MAX_DEPTH) throw new MalformedGraph(`graphs nested deeper than ${MAX_DEPTH}`);
  const reader = { pos: start };
  let name = '';
  let locations: string[] | null = null;
  let external = false;
  while (reader.pos < end) {
    const tag = varint(bytes, reader, end);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) {
      const value = varint(bytes, reader, end);
      if (kind === 'tensor' && field === TENSOR_DATA_LOCATION) external = value === DATA_LOCATION_EXTERNAL;
    } else if (wire === 1 || wire === 5) {
      reader.pos += wire === 1 ? 8 : 4;
      if (reader.pos > end) throw new MalformedGraph('a field runs past its message');
    } else if (wire === 2) {
      const length = varint(bytes, reader, end);
      const from = reader.pos;
      const to = from + length;
      if (to > end) throw new MalformedGraph('a field runs past its message');
      reader.pos = to;
      if (kind === 'tensor') {
        if (field === TENSOR_NAME) name = text(bytes, from, to);
        else if (field === TENSOR_EXTERNAL_DATA) {
          const entry = stringEntry(bytes, from, to);
          if (entry.key === 'location') (locations ??= []).push(entry.value);
        }
      } else {
        const child = CHILDREN[kind][field];
        if (child !== undefined) walk(bytes, from, to, child, depth + 1, found);
      }
    } else {
      throw new MalformedGraph(`wire type ${wire} is not used by ONNX`);
    }
  }
  if (kind !== 'tensor') return;
  if (locations !== null) for (const location of locations) found.push({ tensor: name, location });
  else if (external) found.push({ tensor: name, location: undefined });
}

/** A `StringStringEntryProto` (key = 1, value = 2). */
function stringEntry(bytes: Uint8Array, start: number, end: number): { key: string; value: string } {
  const reader = { pos: start };
  let key = '';
  let value = '';
  while (reader.pos < end) {
    const tag = varint(bytes, reader, end);
    if (tag % 8 !== 2) throw new MalformedGraph('an external data entry holds a field that is not a string');
    const length = varint(bytes, reader, end);
    const to = reader.pos + length;
    if (to > end) throw new MalformedGraph('a field runs past its message');
    const field = Math.floor(tag / 8);
    if (field === 1) key = text(bytes, reader.pos, to);
    else if (field === 2) value = text(bytes, reader.pos, to);
    reader.pos = to;
  }
  return { key, value };
}

function varint(bytes: Uint8Array, reader: { pos: number }, end: number): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (reader.pos >= end) throw new MalformedGraph('a number runs past its message');
    const b = bytes[reader.pos++] ?? 0;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return value;
    scale *= 128;
  }
  throw new MalformedGraph('a number is longer than 10 bytes');
}

const decoder = new TextDecoder();
function text(bytes: Uint8Array, start: number, end: number): string {
  return decoder.decode(bytes.subarray(start, end));
}
