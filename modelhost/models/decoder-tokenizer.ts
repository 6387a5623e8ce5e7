/**
 * The `tiny-decoder` tokenizer: a SentencePiece-style BPE (Metaspace "▁" for spaces,
 * lowercased) over letters, digits and punctuation plus a few dozen merges, with chat
 * special tokens. Small on purpose: the vocabulary is the logits' width.
 */

export const DECODER_SPECIALS = ['<unk>', '<s>', '</s>', '<|system|>', '<|user|>', '<|assistant|>'] as const;
export const EOS_TOKEN = '</s>';

/** The chat template as tokenizer_config.json ships it (Jinja, rendered by @huggingface/jinja). */
export const CHAT_TEMPLATE_JINJA =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

const SPACE = '▁';
const CHARS = [SPACE, '\n', ...'abcdefghijklmnopqrstuvwxyz0123456789', ...".,!?'-:+()"];

/** Merges in rank order; each part is a character or an earlier merge. */
// prettier-ignore
const MERGES: readonly (readonly [string, string])[] = [
  ['▁', 't'], ['h', 'e'], ['▁t', 'he'], ['i', 'n'], ['e', 'r'], ['a', 'n'], ['o', 'n'], ['r', 'e'],
  ['▁', 'a'], ['a', 't'], ['e', 'n'], ['n', 'd'], ['▁', 'w'], ['o', 'u'], ['i', 's'], ['e', 's'],
  ['o', 'r'], ['e', 'd'], ['▁', 's'], ['▁', 'i'], ['in', 'g'], ['▁', 'o'], ['▁', 'h'], ['▁', 'c'],
  ['▁', 'b'], ['▁', 'f'], ['▁', 'm'], ['▁', 'p'], ['▁', 'd'], ['l', 'l'], ['▁a', 'nd'], ['▁t', 'o'],
  ['▁o', 'f'], ['▁i', 's'], ['▁i', 'n'], ['▁w', 'h'], ['▁', 'y'], ['▁y', 'ou'], ['▁h', 'e'], ['▁', 'l'],
  ['a', 'r'], ['▁', 'n'],
];

/** Token strings in id order: specials, characters, then one token per merge. */
export function decoderVocab(): string[] {
  const vocab: string[] = [...DECODER_SPECIALS, ...CHARS];
  for (const [a, b] of MERGES) {
    if (!vocab.includes(a) || !vocab.includes(b)) throw new Error(`merge ${a} + ${b} uses a token not yet in the vocabulary`);
    if (vocab.includes(a + b)) throw new Error(`merge ${a} + ${b} repeats a token`);
    vocab.push(a + b);
  }
  return vocab;
}

export function decoderTokenizerJson(vocab: readonly string[]): unknown {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: DECODER_SPECIALS.map((content) => ({
      id: vocab.indexOf(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Metaspace', replacement: SPACE, prepend_scheme: 'always', split: false },
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: SPACE, prepend_scheme: 'always', split: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
      merges: MERGES.map(([a, b]) => [a, b]),
    },
  };
}

export function decoderTokenizerConfig(maxContext: number): unknown {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    model_max_length: maxContext,
    bos_token: '<s>',
    eos_token: EOS_TOKEN,
    unk_token: '<unk>',
    pad_token: EOS_TOKEN,
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    additional_special_tokens: ['<|system|>', '<|user|>', '<|assistant|>'],
    chat_template: CHAT_TEMPLATE_JINJA,
  };
}
