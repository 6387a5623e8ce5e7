/**
 * Known answers for the project's deterministic test models, computed from the float64
 * references in modelhost/reference.ts: `tiny-embed` embeddings of short sentences drawn
 * from its own vocabulary. Any honest engine class lands within the cosine tolerance of these.
 */
import { readFileSync } from 'node:fs';
import { embedTokenizer, referenceEmbed } from '../../modelhost/reference.ts';
import { seededRandom } from '../../protocol/random.ts';
import type { KnownAnswer } from '../../coordinator/verification/canaries.ts';

/** Sentences look like requests: 3 to 9 common words. */
const MIN_WORDS = 3;
const MAX_WORDS = 9;

/**
 * `count` known-answer `tiny-embed` jobs made from `seed` (about 1 ms each). Use a seed of the
 * operator's own: the set must not be guessable from the source.
 */
export function tinyEmbedKnownAnswers(count: number, seed: number): KnownAnswer[] {
  const random = seededRandom(seed);
  const vocabulary = readWords().filter((w) => /^[a-z]+$/.test(w));
  const tokenizer = embedTokenizer();
  const answers: KnownAnswer[] = [];
  for (let i = 0; i < count; i++) {
    const n = MIN_WORDS + Math.floor(random() * (MAX_WORDS - MIN_WORDS + 1));
    const text = Array.from({ length: n }, () => vocabulary[Math.floor(random() * vocabulary.length)] ?? 'the').join(' ');
    const [embedding] = referenceEmbed([text]);
    if (embedding === undefined) throw new Error('the tiny-embed reference returned no embedding');
    answers.push({
      request: { kind: 'embed', model: 'tiny-embed', inputs: [text] },
      expected: {
        kind: 'embed',
        embeddings: [embedding],
        usage: { promptTokens: tokenizer.encode(text).ids.length, completionTokens: 0 },
      },
    });
  }
  return answers;
}

/** The corpus canary prompts are drawn from: the common words of `tiny-embed`'s vocabulary. */
export function readWords(): string[] {
  const data = JSON.parse(readFileSync(new URL('../../modelhost/models/tiny-embed-words.json', import.meta.url), 'utf8')) as {
    words?: unknown;
  };
  return Array.isArray(data.words) ? data.words.filter((w): w is string => typeof w === 'string') : [];
}
