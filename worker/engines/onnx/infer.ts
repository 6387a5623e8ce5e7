/** Checks raw tensor inputs against a model's declared inputs before they reach the runtime. */
import { InvalidInputError } from '../../../protocol/errors.ts';
import type { Tensor } from '../../../protocol/jobs.ts';
import type { TensorSpec } from '../../../protocol/manifest.ts';

export function checkInferInputs(modelId: string, specs: readonly TensorSpec[], inputs: Record<string, Tensor>): void {
  const expected = specs.map((s) => s.name);
  for (const name of Object.keys(inputs)) {
    if (!expected.includes(name)) {
      throw new InvalidInputError(`Model "${modelId}" has no input "${name}". Its inputs are: ${expected.join(', ')}.`, { input: name });
    }
  }
  for (const spec of specs) {
    const tensor = inputs[spec.name];
    if (tensor === undefined) {
      throw new InvalidInputError(`Model "${modelId}" needs input "${spec.name}" (${describe(spec)}), which the job lacks.`, {
        input: spec.name,
      });
    }
    if (tensor.type !== spec.type) {
      throw new InvalidInputError(`Input "${spec.name}" of model "${modelId}" must be ${spec.type}, not ${tensor.type}.`, {
        input: spec.name,
      });
    }
    const fits =
      tensor.dims.length === spec.shape.length &&
      spec.shape.every((dim, i) => (typeof dim === 'string' ? (tensor.dims[i] ?? 0) >= 1 : tensor.dims[i] === dim));
    if (!fits) {
      throw new InvalidInputError(
        `Input "${spec.name}" of model "${modelId}" has shape [${tensor.dims.join(', ')}], but the model takes ${describe(spec)}. Reshape the input.`,
        { input: spec.name, dims: tensor.dims, shape: spec.shape },
      );
    }
    const count = tensor.dims.reduce((a, b) => a * b, 1);
    if (tensor.data.length !== count) {
      throw new InvalidInputError(
        `Input "${spec.name}" has ${tensor.data.length} values, but its shape [${tensor.dims.join(', ')}] holds ${count}.`,
        { input: spec.name },
      );
    }
  }
}

function describe(spec: TensorSpec): string {
  return `${spec.type} [${spec.shape.join(', ')}]`;
}
