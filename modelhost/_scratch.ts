import { decoderTokenizer, referenceGreedy } from './reference.ts';
import { randomWeights, DEFAULT_SCALES, type DecoderScales } from './models/tiny-decoder.ts';
import { decoderVocab } from './models/decoder-tokenizer.ts';
const tok = decoderTokenizer();
const vocab = decoderVocab();
const prompts = ['<|user|>Hello, how are you?\n<|assistant|>', 'Once upon a time', '<|system|>You are terse.\n<|user|>What is 2+2?\n<|assistant|>', 'a', 'The quick brown fox', '<|user|>Tell me a story.\n<|assistant|>', 'hello world', '<|user|>hi\n<|assistant|>'];
function longestRepeat(t: number[]): number { // longest stretch where t[i]==t[i-1] or t[i]==t[i-2]
  let best = 0, cur = 0; for (let i = 2; i < t.length; i++) { if (t[i] === t[i-1] || t[i] === t[i-2]) { cur++; best = Math.max(best, cur); } else cur = 0; } return best; }
const variants: Partial<DecoderScales>[] = JSON.parse(process.argv[2] ?? '[{}]');
for (const v of variants) {
  const sc = { ...DEFAULT_SCALES, ...v };
  const w = randomWeights(vocab, sc);
  let minM = Infinity, worstRep = 0, minDistinct = 999, minLen = 999;
  const lines: string[] = [];
  for (const p of prompts) {
    const ids = tok.encode(p).ids;
    const r = referenceGreedy(ids, 100, [w.eosTokenId], w);
    minM = Math.min(minM, r.minMargin); worstRep = Math.max(worstRep, longestRepeat(r.tokens)); minDistinct = Math.min(minDistinct, new Set(r.tokens).size); minLen = Math.min(minLen, r.tokens.length);
    lines.push(`   ${r.minMargin.toFixed(3)} ${JSON.stringify(tok.decode(r.tokens))}`);
  }
  console.log(JSON.stringify(v), 'minMargin', minM.toFixed(4), 'worstRepeat', worstRep, 'minDistinct', minDistinct, 'minLen', minLen);
  if (process.argv[3]) console.log(lines.join('\n'));
}
