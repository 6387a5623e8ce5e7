import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from './errors.ts';
import { chatPromptText, embeddingInputText, promptTokenIds, stopIndex } from './prompt.ts';

describe('prefix rules', () => {
  const e5 = { prefixes: { query: 'query: ', passage: 'passage: ', default: 'query: ' } };

  it('puts the role’s prefix before the text, the default one without a role', () => {
    expect(embeddingInputText(e5, 'how tall is it', 'query')).toBe('query: how tall is it');
    expect(embeddingInputText(e5, 'It is 3 m tall.', 'passage')).toBe('passage: It is 3 m tall.');
    expect(embeddingInputText(e5, 'hello', undefined)).toBe('query: hello');
    expect(embeddingInputText({ prefixes: { query: 'Represent this: ' } }, 'doc', undefined)).toBe('doc');
  });

  it('leaves models without prefixes alone, and refuses a role the model has none for', () => {
    expect(embeddingInputText({ prefixes: {} }, 'text', 'query')).toBe('text');
    expect(() => embeddingInputText(e5, 'x', 'document')).toThrow(InvalidInputError);
    expect(() => embeddingInputText(e5, 'x', 'document')).toThrow(/"query", "passage", "default"/);
  });
});

describe('stop sequences', () => {
  it('finds the earliest stop text', () => {
    expect(stopIndex('one two. three\n', ['\n', '.'])).toBe(7);
    expect(stopIndex('nothing here', ['###'])).toBe(-1);
    expect(stopIndex('text', undefined)).toBe(-1);
  });
});

describe('chat templates', () => {
  const spec = {
    chatTemplate:
      "{{ bos_token }}{% for m in messages %}{{ '<|' + m.role + '|>' + m.content + eos_token }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}",
    specialTokens: { bos_token: '<s>', eos_token: '</s>' },
  };

  it('renders the model’s Jinja template with its special tokens and the generation prompt', () => {
    expect(chatPromptText(spec, [{ role: 'user', content: 'hi' }])).toBe('<s><|user|>hi</s><|assistant|>');
  });

  it('refuses chat for a model without a template, and passes on what a template raises', () => {
    expect(() => chatPromptText({ specialTokens: {} }, [{ role: 'user', content: 'hi' }])).toThrow(/no chat template/);
    const strict = { chatTemplate: "{{ raise_exception('Conversation roles must alternate') }}", specialTokens: {} };
    expect(() => chatPromptText(strict, [{ role: 'user', content: 'hi' }])).toThrow(/roles must alternate/);
  });

  it('tokenizes the rendered prompt without adding special tokens twice', () => {
    const tokenizer = new Tokenizer(
      {
        version: '1.0',
        added_tokens: [{ id: 0, content: '<s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false }],
        normalizer: null,
        pre_tokenizer: { type: 'Whitespace' },
        post_processor: {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [],
          special_tokens: { '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] } },
        },
        decoder: null,
        model: { type: 'WordLevel', vocab: { '<s>': 0, hi: 1, '[UNK]': 2 }, unk_token: '[UNK]' },
      },
      {},
    );
    const chat = { chatTemplate: '{{ bos_token }}{{ messages[0].content }}', specialTokens: { bos_token: '<s>' } };
    expect(
      promptTokenIds(tokenizer, chat, {
        kind: 'chat',
        model: 'm',
        messages: [{ role: 'user', content: 'hi' }],
        maxTokens: 1,
        sampling: { temperature: 0, topP: 1, seed: 0 },
      }),
    ).toEqual([0, 1]);
    // A plain prompt gets the tokenizer's own special tokens.
    expect(
      promptTokenIds(tokenizer, chat, {
        kind: 'generate',
        model: 'm',
        prompt: 'hi',
        maxTokens: 1,
        sampling: { temperature: 0, topP: 1, seed: 0 },
      }),
    ).toEqual([0, 1]);
  });
});
