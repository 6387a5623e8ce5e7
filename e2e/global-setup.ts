/**
 * Starts, once for all browser tests: the model host the app uses, a second host with the
 * web-llm fixtures and switchable corruption (so those tests cannot disturb the others), and
 * the built app. Their URLs reach the tests through the environment.
 */
import type { WebLlmModel } from '../protocol/manifest.ts';
import { mlcFixtureFiles, mlcManifestEntries } from '../modelhost/mlc.ts';
import { startModelHost } from '../modelhost/server.ts';
import { startAppServer } from '../scripts/serve.ts';

/** A chat model the way real ones are listed, f16 build first: SwiftShader (no shader-f16) must get q4f32_1. */
function twoBuilds(base: string): WebLlmModel {
  const corrupt = mlcManifestEntries(base).find((m) => m.id === 'tiny-mlc-corrupt-lib');
  const f32 = corrupt?.webllm.builds[0];
  if (corrupt === undefined || f32 === undefined) throw new Error('mlc fixtures changed');
  const f16 = { ...f32, quantization: 'q4f16_1' as const, modelId: 'tiny-mlc-q4f16_1-MLC', requiredFeatures: ['shader-f16'] };
  return { ...corrupt, id: 'tiny-mlc-two-builds', name: 'Tiny MLC (f16 and f32 builds)', webllm: { builds: [f16, f32] } };
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const host = await startModelHost({ port: 0 });
  const fixtures = await startModelHost({
    port: 0,
    extraFiles: mlcFixtureFiles(),
    extraEntries: (base) => [...mlcManifestEntries(base), twoBuilds(base)],
  });
  const app = await startAppServer({ distDir: 'dist', port: 0, config: { manifestUrl: host.manifestUrl } });
  process.env['SPINNERET_APP_URL'] = app.url;
  process.env['SPINNERET_MODELHOST_URL'] = host.url;
  process.env['SPINNERET_MANIFEST_URL'] = host.manifestUrl;
  process.env['SPINNERET_FIXTURES_URL'] = fixtures.url;
  return async () => {
    await app.close();
    await host.close();
    await fixtures.close();
  };
}
