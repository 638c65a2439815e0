// Times HF tokenizers (Rust, node bindings) encodeBatch over a JSON list of
// texts and prints tokens per second (best of the rounds, after a warm-up).
// Usage: NODE_PATH=... RAYON_NUM_THREADS=n node hf.js NAME TOKENIZER TEXTS.json ROUNDS
'use strict';
const fs = require('fs');
const path = require('path');
const ref = require(path.join(__dirname, '..', 'tokenizer_reference.js'));
const [name, tokPath, textsPath, rounds] = process.argv.slice(2);
const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8'));
const tok = name === 'gpt2' ? ref.gpt2(tokPath) : ref.hf.Tokenizer.fromFile(tokPath);
tok.disableTruncation();
tok.disablePadding();
(async () => {
  let best = Infinity, tokens = 0;
  for (let r = 0; r <= Number(rounds); r++) {
    const t0 = process.hrtime.bigint();
    const encs = await tok.encodeBatch(texts, { addSpecialTokens: true });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    tokens = 0;
    for (const e of encs) tokens += e.getLength();
    if (r > 0) best = Math.min(best, s);
  }
  console.log(tokens / best, tokens);
})().catch((e) => { console.error(e); process.exit(1); });
