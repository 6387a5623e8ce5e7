/**
 * A small builder for ONNX graphs on top of `onnx-proto`, enough for the test models:
 * raw little-endian initializers, typed attributes and deterministic node names.
 */
import onnxProto from 'onnx-proto';
import type { onnx as proto } from 'onnx-proto';

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;
const AttrType = onnx.AttributeProto.AttributeType;

export type ElemType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';

const ELEM: Record<ElemType, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  int64: DataType.INT64,
  int32: DataType.INT32,
  uint8: DataType.UINT8,
  bool: DataType.BOOL,
};

/** An attribute value with its ONNX type spelled out (a bare number would be ambiguous: 1 vs 1.0). */
export type Attr = { int: number } | { float: number } | { ints: readonly number[] } | { string: string };
export const int = (value: number): Attr => ({ int: value });
export const float = (value: number): Attr => ({ float: value });
export const ints = (value: readonly number[]): Attr => ({ ints: value });

/** Dimensions of a graph input or output; a string is a symbolic dimension. */
export type Dims = readonly (number | string)[];

export interface NodeOptions {
  domain?: string;
  /** Names of the outputs; by default one fresh name. */
  outputs?: readonly string[];
}

export interface OpsetImport {
  domain: string;
  version: number;
}

function floatBytes(data: ArrayLike<number>): Uint8Array {
  const view = new DataView(new ArrayBuffer(data.length * 4));
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i] ?? 0, true);
  return new Uint8Array(view.buffer);
}

/** float32 → IEEE 754 half bits, rounded to nearest even (what numpy's astype(float16) gives). */
const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

export function floatToHalf(value: number): number {
  scratch[0] = value;
  const x = scratchBits[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

function halfBytes(data: ArrayLike<number>): Uint8Array {
  const view = new DataView(new ArrayBuffer(data.length * 2));
  for (let i = 0; i < data.length; i++) view.setUint16(i * 2, floatToHalf(data[i] ?? 0), true);
  return new Uint8Array(view.buffer);
}

function int64Bytes(data: readonly number[]): Uint8Array {
  const view = new DataView(new ArrayBuffer(data.length * 8));
  for (let i = 0; i < data.length; i++) view.setBigInt64(i * 8, BigInt(data[i] ?? 0), true);
  return new Uint8Array(view.buffer);
}

function toAttribute(name: string, value: Attr): proto.IAttributeProto {
  if ('int' in value) return { name, type: AttrType.INT, i: value.int };
  if ('float' in value) return { name, type: AttrType.FLOAT, f: value.float };
  if ('ints' in value) return { name, type: AttrType.INTS, ints: [...value.ints] };
  return { name, type: AttrType.STRING, s: new TextEncoder().encode(value.string) };
}

function valueInfo(name: string, type: ElemType, dims: Dims): proto.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export class GraphBuilder {
  private readonly nodes: proto.INodeProto[] = [];
  private readonly initializers: proto.ITensorProto[] = [];
  private readonly inputs: proto.IValueInfoProto[] = [];
  private readonly outputs: proto.IValueInfoProto[] = [];
  private counter = 0;
  /** Bytes of the largest initializer, for the manifest's `maxBufferBytes`. */
  largestInitializerBytes = 0;
  /** Sum of all initializer bytes. */
  initializerBytes = 0;

  constructor(private readonly name: string) {}

  input(name: string, type: ElemType, dims: Dims): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: ElemType, dims: Dims): string {
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  private addInitializer(name: string, dataType: number, dims: readonly number[], rawData: Uint8Array): string {
    this.initializers.push({ name, dataType, dims: [...dims], rawData });
    this.largestInitializerBytes = Math.max(this.largestInitializerBytes, rawData.length);
    this.initializerBytes += rawData.length;
    return name;
  }

  /** A float32 initializer; `dims` [] makes a scalar. */
  f32(name: string, dims: readonly number[], data: ArrayLike<number>): string {
    return this.addInitializer(name, DataType.FLOAT, dims, floatBytes(data));
  }

  /** A float16 initializer from float values (rounded to nearest even). */
  f16(name: string, dims: readonly number[], data: ArrayLike<number>): string {
    return this.addInitializer(name, DataType.FLOAT16, dims, halfBytes(data));
  }

  /** A float initializer of `type`. */
  float(type: 'float32' | 'float16', name: string, dims: readonly number[], data: ArrayLike<number>): string {
    return type === 'float16' ? this.f16(name, dims, data) : this.f32(name, dims, data);
  }

  i64(name: string, dims: readonly number[], data: readonly number[]): string {
    return this.addInitializer(name, DataType.INT64, dims, int64Bytes(data));
  }

  u8(name: string, dims: readonly number[], data: Uint8Array): string {
    return this.addInitializer(name, DataType.UINT8, dims, new Uint8Array(data));
  }

  /** A float scalar constant, named after its value. */
  scalar(value: number): string {
    const name = `const_${value}`;
    if (this.initializers.some((t) => t.name === name)) return name;
    return this.f32(name, [], [value]);
  }

  /** A 1-D int64 constant (shapes, axes, perms), named after its values. */
  shape(values: readonly number[]): string {
    const name = `shape_${values.join('_').replaceAll('-', 'm')}`;
    if (this.initializers.some((t) => t.name === name)) return name;
    return this.i64(name, [values.length], values);
  }

  /** Adds a node and returns its first output's name. */
  node(opType: string, inputs: readonly string[], attrs: Record<string, Attr> = {}, options: NodeOptions = {}): string {
    const id = this.counter++;
    const outputs = options.outputs ?? [`${opType.toLowerCase()}_${id}`];
    this.nodes.push({
      name: `${opType}_${id}`,
      opType,
      domain: options.domain ?? '',
      input: [...inputs],
      output: [...outputs],
      attribute: Object.entries(attrs).map(([k, v]) => toAttribute(k, v)),
    });
    const first = outputs[0];
    if (first === undefined) throw new Error(`${opType} node needs an output`);
    return first;
  }

  /** Serializes the model (IR version 8: opset 17 needs at least that). */
  encode(opsets: readonly OpsetImport[], docString = ''): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'spinneret-modelhost',
      producerVersion: '1',
      docString,
      opsetImport: opsets.map((o) => ({ domain: o.domain, version: o.version })),
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    // protobufjs returns a Node Buffer here; hand out a plain Uint8Array (Buffer.slice shares memory).
    return new Uint8Array(onnx.ModelProto.encode(model).finish());
  }
}

/** onnxruntime's names for ONNX element types (TensorProto.DataType). */
const TYPE_NAMES: Record<number, string> = {
  [DataType.FLOAT]: 'float32',
  [DataType.FLOAT16]: 'float16',
  [DataType.INT64]: 'int64',
  [DataType.INT32]: 'int32',
  [DataType.INT8]: 'int8',
  [DataType.UINT8]: 'uint8',
  [DataType.BOOL]: 'bool',
};

/** The inputs an ONNX model's graph declares, with their element types, read from its bytes. */
export function graphInputs(bytes: Uint8Array): { name: string; type: string }[] {
  const model = onnx.ModelProto.decode(bytes);
  const initializers = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  return (model.graph?.input ?? [])
    .filter((i) => !initializers.has(i.name ?? ''))
    .map((i) => ({ name: i.name ?? '', type: TYPE_NAMES[i.type?.tensorType?.elemType ?? 0] ?? 'unknown' }));
}

const ELEM_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.FLOAT16]: 2,
  [DataType.INT64]: 8,
  [DataType.INT32]: 4,
  [DataType.INT8]: 1,
  [DataType.UINT8]: 1,
  [DataType.BOOL]: 1,
  [DataType.DOUBLE]: 8,
};

/**
 * The largest initializer of an ONNX model, bytes, read from its bytes: raw data, or the
 * `length` an external-data initializer declares, or its dimensions times its element size.
 */
export function largestInitializerBytes(bytes: Uint8Array): number {
  const model = onnx.ModelProto.decode(bytes);
  let largest = 0;
  for (const t of model.graph?.initializer ?? []) {
    const external = (t.externalData ?? []).find((e) => e.key === 'length')?.value;
    const counted = (t.dims ?? []).reduce((n: number, d) => n * Number(d), 1) * (ELEM_BYTES[t.dataType ?? 0] ?? 1);
    const inline = t.rawData?.length ?? 0;
    const size = inline > 0 ? inline : external !== undefined ? Number(external) : counted;
    largest = Math.max(largest, size);
  }
  return largest;
}

/**
 * The model with every initializer of at least `minBytes` moved to one external data file, as
 * exports over protobuf's 2 GB limit are published (`model.onnx` + `model.onnx_data`): each
 * moved tensor names `location` (relative to the graph's folder), its `offset` (4096-aligned)
 * and `length`.
 */
export function withExternalData(bytes: Uint8Array, location: string, minBytes = 1024): { graph: Uint8Array; data: Uint8Array } {
  const model = onnx.ModelProto.decode(bytes);
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const t of model.graph?.initializer ?? []) {
    const raw = t.rawData;
    if (raw === undefined || raw === null || raw.length < minBytes) continue;
    const start = Math.ceil(offset / 4096) * 4096;
    if (start > offset) parts.push(new Uint8Array(start - offset));
    parts.push(new Uint8Array(raw));
    t.externalData = [
      { key: 'location', value: location },
      { key: 'offset', value: String(start) },
      { key: 'length', value: String(raw.length) },
    ];
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.rawData = new Uint8Array(0);
    offset = start + raw.length;
  }
  const data = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return { graph: new Uint8Array(onnx.ModelProto.encode(model).finish()), data };
}

/** An initializer's values widened to numbers (float32, float16 or uint8 raw data). */
export interface InitializerValues {
  dims: number[];
  values: Float64Array | Uint8Array;
}

/** The model's initializers by name: float ones widened to float64, uint8 ones as bytes. */
export function readInitializers(bytes: Uint8Array): Map<string, InitializerValues> {
  const model = onnx.ModelProto.decode(bytes);
  const out = new Map<string, InitializerValues>();
  for (const t of model.graph?.initializer ?? []) {
    const raw = t.rawData ?? new Uint8Array(0);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const dims = (t.dims ?? []).map(Number);
    let values: Float64Array | Uint8Array;
    if (t.dataType === DataType.FLOAT) values = Float64Array.from({ length: raw.length / 4 }, (_, i) => view.getFloat32(i * 4, true));
    else if (t.dataType === DataType.FLOAT16)
      values = Float64Array.from({ length: raw.length / 2 }, (_, i) => halfToFloat(view.getUint16(i * 2, true)));
    else if (t.dataType === DataType.UINT8) values = new Uint8Array(raw);
    else continue;
    out.set(t.name ?? '', { dims, values });
  }
  return out;
}

/** IEEE 754 half bits → number. */
export function halfToFloat(bits: number): number {
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  const value = exp === 0 ? frac * 2 ** -24 : exp === 31 ? (frac === 0 ? Infinity : NaN) : (1 + frac / 1024) * 2 ** (exp - 15);
  return bits & 0x8000 ? -value : value;
}

/** The op types of the graph's nodes with their int attributes, in order. */
export function graphNodes(bytes: Uint8Array): { opType: string; inputs: string[]; ints: Record<string, number> }[] {
  const model = onnx.ModelProto.decode(bytes);
  return (model.graph?.node ?? []).map((n) => ({
    opType: n.opType ?? '',
    inputs: [...(n.input ?? [])],
    ints: Object.fromEntries((n.attribute ?? []).filter((a) => a.type === AttrType.INT).map((a) => [a.name ?? '', Number(a.i ?? 0)])),
  }));
}
