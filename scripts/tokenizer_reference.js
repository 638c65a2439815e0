#!/usr/bin/env node
// Generates the tokenizer parity fixtures under testdata/tokenizer/ from Hugging
// Face's Rust tokenizers (npm package `tokenizers`, node bindings over the Rust
// crate). Run it from outside the repository's node_modules-free tree, e.g.:
//
//   mkdir -p /tmp/hftok && (cd /tmp/hftok && npm init -y && npm install tokenizers@0.23.2)
//   NODE_PATH=/tmp/hftok/node_modules node scripts/tokenizer_reference.js ../shared/data testdata/tokenizer
//
// Texts from the shared data sets are referenced by (source, index) rather than
// copied; the Go test rebuilds the same lists (see tokenizer/reference_test.go).
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const hf = require('tokenizers');
const crypto = require('crypto');
const sha1 = (s) => crypto.createHash('sha1').update(s, 'utf8').digest('hex').slice(0, 16);

const dataDir = process.argv[2] || '../shared/data';
const outDir = process.argv[3] || 'testdata/tokenizer';

// ---------- sources (keep in sync with loadSources in reference_test.go) ----------
function jsonl(gzPath) {
  return zlib.gunzipSync(fs.readFileSync(gzPath)).toString('utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l));
}
function sources() {
  const squad = JSON.parse(fs.readFileSync(path.join(dataDir, 'squadshifts/new_wiki_v1.0.json'), 'utf8'));
  const q = [], p = [], qp = [];
  for (const art of squad.data) for (const para of art.paragraphs) {
    p.push(para.context);
    for (const qa of para.qas) { q.push(qa.question); qp.push(p.length - 1); }
  }
  const claims = zlib.gunzipSync(fs.readFileSync(path.join(dataDir, 'scifact/topics.beir-v1.0.0-scifact.test.tsv.gz')))
    .toString('utf8').split('\n').filter((l) => l.length).map((l) => l.slice(l.indexOf('\t') + 1));
  const aq = jsonl(path.join(dataDir, 'arguana/queries.jsonl.gz')).map((o) => o.text);
  const ac = jsonl(path.join(dataDir, 'arguana/corpus.jsonl.gz')).map((o) => o.text);
  return { 'squad.q': q, 'squad.p': p, 'scifact.claim': claims, 'arguana.q': aq, 'arguana.doc': ac, qp };
}

function nasty() {
  const s = [
    '', ' ', '   \t\n ', '\u00a0', '\u3000', '\n', '\r\n\r\n',
    'Héllo Wörld Çà et là', 'ÅNGSTRÖM', 'naïve café résumé', 'e\u0301 vs \u00e9', 'Ǆ ǅ ǆ', 'İstanbul İİ', 'ß ẞ straße',
    'Σίσυφος ΣΑΣ ὅς', 'ﬁ ﬂ ligatures ﬀ', 'Ⅻ ① ⑴ ㈠', 'ＡＢＣ ｆｕｌｌｗｉｄｔｈ １２３', 'Ångström ÅÅ Å',
    '你好，世界！', '日本語のテキストです。カタカナ ﾊﾝｶｸ', '한국어 텍스트', '𠀀𪜀 𫝀 ext B', '㐀㐁 豈', '中文English混合text',
    '🤗', '👩‍👩‍👧‍👦', '🏳️‍🌈', '👍🏽', '🥰 🫠 🪿', '1️⃣ #️⃣', '😀😃😄😁😆😅😂🤣', '🇺🇸🇫🇷',
    '\u0000abc', 'a\u0001b\u001fc', '\u007f\u0080\u009f', 'tab\tnew\nline\r\nend', '\ufffd', '\u200b zero\u200bwidth',
    '\u200c\u200d\u2060\ufeff', 'soft\u00adhyphen', '\u00ad', 'a\u0000', '\u0085next line', 'bell\u0007',
    'a'.repeat(101), 'a'.repeat(100), 'a'.repeat(99), 'supercalifragilistic'.repeat(6), 'x'.repeat(3000),
    'antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis', '1234567890'.repeat(30),
    'a\u0300\u0301\u0302', 'Z͑ͫ̓ͪ̂ͫ̽͏̴̙̤̞͉͚̯̞̠͍A̴̵̜̰͔ͫ͗͢L̠ͨͧͩ͘G̴̻͈͍͔̹̑͗̎̅͛́Ǫ̵̹̻̝̳͂̌̌͘', 'o\u0308\u0301 q\u0323\u0307',
    'مرحبا بالعالم', 'שלום עולם', '\u202eevil\u202c text', '\u200f\u200e', 'עברית and English', 'العربية ١٢٣ ٤٥٦',
    '\ud7ff\ue000\uffff\u{10ffff}\u{1d11e}', '\ufffe', '\u{e0001}\u{e0041}', '\u{f0000}\u{10fffd}', '\uf8ff',
    '[CLS] hello [SEP] world [MASK]', '[cls] [sep]', '<s>hi</s>', '<|endoftext|>', 'x<|endoftext|>y', 'a <mask> b', ' <mask>',
    '<mask>', '[UNK]', '[PAD][PAD]', 'hello[SEP]', '<pad> <unk>', '</s></s>', '<s> <s>',
    'Hello,world!!! (test) [x] {y} "q" \'single\' — – … «» ¿¡', "don't can't we'll I'm you've she'd they're",
    "'S 'LL 'Re 'VE", "'s's's", '$100.00 50% #tag @user ~home^', 'a.b.c e-mail x/y', '...', '!!!???', '----', '    ',
    'a   b', '  leading', 'trailing  ', 'a\n\nb', '\u2028\u2029', '\u1680\u2000\u200a\u202f\u205f', 'a \u00a0 b',
    '½ ⅓ ²³ ¹', '∑∫√∞ ≠ ≤', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝', 'ภาษาไทย', 'हिन्दी', 'தமிழ்', 'ქართული', 'ግዕዝ', 'ᠮᠣᠩᠭᠣᠯ', 'བོད་ཡིག',
    'Ελληνικά', 'Русский текст ЁЖИК', 'Ǳ ǲ ǳ', 'ΐ ΰ', 'ﬆ', 'K (Kelvin) Ω (Ohm)', 'İ̇', 'Ⓐⓑ', '𐐀𐐨 Deseret',
    'x' + ' '.repeat(50) + 'y', '\t\t\t', ' \u0301', '\u0301', '\u0301abc', 'ab\u0301', '♥♦♣♠', '©®™', '€£¥₹',
    'http://example.com/path?query=1&x=y#frag', 'user@example.com', 'C++ C# F#', '3.14159 -2.5e-10 1,000,000',
  ];
  // Seeded pseudo-random strings over mixed ranges.
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };
  const ranges = [[0x20, 0x7e], [0x0, 0x20], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0xdff],
    [0x1100, 0x11ff], [0x2000, 0x206f], [0x2070, 0x2bff], [0x3000, 0x30ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
    [0xe000, 0xf8ff], [0xf900, 0xfaff], [0xfb00, 0xfffd], [0x10000, 0x1ffff], [0x1f300, 0x1faff], [0x20000, 0x2ffff], [0xe0000, 0xe01ef]];
  for (let n = 0; n < 300; n++) {
    const len = Math.floor(rnd() * 40);
    let t = '';
    for (let i = 0; i < len; i++) {
      const r = rnd() < 0.4 ? ranges[0] : ranges[Math.floor(rnd() * ranges.length)];
      t += String.fromCodePoint(r[0] + Math.floor(rnd() * (r[1] - r[0] + 1)));
      if (rnd() < 0.15) t += ' ';
    }
    s.push(t);
  }
  return s;
}

// ---------- tokenizers ----------
function bpeParts(dir, vocabName, mergesName) {
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, vocabName), 'utf8'));
  const merges = fs.readFileSync(path.join(dir, mergesName), 'utf8').split('\n')
    .filter((l, i) => l.length && !(i === 0 && l.startsWith('#version')));
  return { vocab, merges };
}
function bpeModel(vocab, merges) {
  return { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
    fuse_unk: false, byte_fallback: false, vocab, merges };
}
function added(id, content, special, lstrip = false, normalized = false) {
  return { id, content, single_word: false, lstrip, rstrip: false, normalized, special };
}
// As transformers' GPT2Converter makes it (add_prefix_space=false, no BOS).
function gpt2(dir) {
  const { vocab, merges } = bpeParts(dir, 'encoder.json', 'vocab.bpe');
  return hf.Tokenizer.fromString(JSON.stringify({
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(vocab['<|endoftext|>'], '<|endoftext|>', true, false, true)],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModel(vocab, merges),
  }));
}
// A RoBERTa/BART-style tokenizer (as transformers' RobertaConverter makes it) over
// the GPT-2 vocabulary with <s> <pad> </s> <unk> <mask> appended at 50257..50261.
const robertaExtra = ['<s>', '<pad>', '</s>', '<unk>', '<mask>'];
function roberta(dir) {
  const { vocab, merges } = bpeParts(dir, 'encoder.json', 'vocab.bpe');
  let next = Object.keys(vocab).length;
  const ids = {};
  for (const t of robertaExtra) { vocab[t] = next; ids[t] = next; next++; }
  return hf.Tokenizer.fromString(JSON.stringify({
    version: '1.0', truncation: null, padding: null,
    added_tokens: robertaExtra.map((t) => added(ids[t], t, true, t === '<mask>')),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'RobertaProcessing', sep: ['</s>', ids['</s>']], cls: ['<s>', ids['<s>']], trim_offsets: true, add_prefix_space: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModel(vocab, merges),
  }));
}

// ---------- fixture writing ----------
function writeGz(name, lines) {
  const p = path.join(outDir, name);
  fs.writeFileSync(p, zlib.gzipSync(lines.map((l) => JSON.stringify(l)).join('\n') + '\n', { level: 9 }));
  console.log(`${p}: ${lines.length} lines, ${fs.statSync(p).size} bytes`);
}

async function fixtures(name, tok, src, items, pairs) {
  tok.disableTruncation();
  tok.disablePadding();
  const lines = [];
  for (const it of items) {
    const text = it.text !== undefined ? it.text : src[it.src][it.i];
    const enc = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = enc.getIds();
    const line = Object.assign({}, it, { ids });
    if (enc.getTypeIds().some((x) => x !== 0)) line.type_ids = enc.getTypeIds();
    // Decoded text: inline for our own strings, as a digest for the data sets' texts.
    const dec = await tok.decode(ids, true), decAll = await tok.decode(ids, false);
    if (it.text !== undefined) {
      line.decoded = dec;
      line.decoded_all = decAll;
      line.ids_no_special = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    }
    else { line.decoded_sha1 = sha1(dec); line.decoded_all_sha1 = sha1(decAll); }
    lines.push(line);
  }
  for (const pr of pairs) {
    const a = src['squad.q'][pr.a], b = src['squad.p'][pr.b];
    for (const [strategy, max] of [['none', 0], ['longest_first', 64], ['only_second', 64], ['longest_first', 7]]) {
      if (strategy === 'none') tok.disableTruncation();
      else tok.setTruncation(max, { strategy: strategy === 'longest_first' ? 'LongestFirst' : 'OnlySecond' });
      const enc = await tok.encode(a, b, { addSpecialTokens: true });
      lines.push({ pair: [pr.a, pr.b], truncation: strategy, max_length: max, ids: enc.getIds(), type_ids: enc.getTypeIds() });
    }
  }
  // Pairs of our own strings (word-boundary effects of truncation, errors).
  const ns = nasty();
  for (let i = 0; i + 1 < ns.length; i += 3) {
    for (const [strategy, max] of [['longest_first', 5], ['longest_first', 8], ['longest_first', 13], ['only_second', 9]]) {
      tok.setTruncation(max, { strategy: strategy === 'longest_first' ? 'LongestFirst' : 'OnlySecond' });
      const line = { text_pair: [ns[i], ns[i + 1]], truncation: strategy, max_length: max };
      try {
        const enc = await tok.encode(ns[i], ns[i + 1], { addSpecialTokens: true });
        line.ids = enc.getIds();
        line.type_ids = enc.getTypeIds();
      } catch (e) {
        line.error = true;
      }
      lines.push(line);
    }
  }
  tok.disableTruncation();
  writeGz(`ref_${name}.jsonl.gz`, lines);
}

// Per-code-point reference tables, run-length coded: [first, last, value].
function codepointTables() {
  const norm = hf.bertNormalizer({ cleanText: true, handleChineseChars: true, stripAccents: true, lowercase: true });
  const normCased = hf.bertNormalizer({ cleanText: true, handleChineseChars: true, stripAccents: false, lowercase: false });
  const bertPre = hf.bertPreTokenizer();
  const bl = hf.byteLevelPreTokenizer(false, true);
  const runs = { bert_uncased: [], bert_cased: [], bert_punct: [], bytelevel_class: [] };
  const push = (arr, cp, v) => {
    const last = arr[arr.length - 1];
    if (last && last[1] === cp - 1 && last[2] === v) last[1] = cp; else arr.push([cp, cp, v]);
  };
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const ch = String.fromCodePoint(cp);
    // '=' unchanged, 'C' padded with spaces (CJK), 'D' = the NFD of the char, '>x' = x.
    const code = (v) => (v === ch ? '=' : v === ' ' + ch + ' ' ? 'C' : v === ch.normalize('NFD') ? 'D' : '>' + v);
    push(runs.bert_uncased, cp, code(norm.normalizeString(ch)));
    push(runs.bert_cased, cp, code(normCased.normalizeString(ch)));
    const n = bertPre.preTokenizeString('a' + ch + 'b').length;
    push(runs.bert_punct, cp, n === 3 ? 'P' : n === 2 ? 'S' : '-');
    let c = 'S';
    if (bl.preTokenizeString('a' + ch).length === 1) c = 'L';
    else if (bl.preTokenizeString('1' + ch).length === 1) c = 'N';
    else if (bl.preTokenizeString('!' + ch).length === 1) c = 'O';
    push(runs.bytelevel_class, cp, c);
  }
  const p = path.join(outDir, 'codepoints.json.gz');
  fs.writeFileSync(p, zlib.gzipSync(JSON.stringify(runs), { level: 9 }));
  console.log(`${p}: ${Object.entries(runs).map(([k, v]) => `${k} ${v.length} runs`).join(', ')}, ${fs.statSync(p).size} bytes`);
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const src = sources();
  const items = [];
  const every = { 'squad.q': 5, 'squad.p': 4, 'scifact.claim': 1, 'arguana.q': 3, 'arguana.doc': 50 };
  for (const [k, step] of Object.entries(every)) for (let i = 0; i < src[k].length; i += step) items.push({ src: k, i });
  for (const t of nasty()) items.push({ text: t });
  const pairs = [];
  for (let i = 0; i < src['squad.q'].length; i += 20) pairs.push({ a: i, b: src.qp[i] });
  const tokDir = path.join(dataDir, 'tokenizers');
  const bert = hf.Tokenizer.fromFile(path.join(tokDir, 'bert-base-uncased/tokenizer.json'));
  await fixtures('bert-base-uncased', bert, src, items, pairs);
  await fixtures('gpt2', gpt2(path.join(tokDir, 'gpt2-bpe')), src, items, pairs);
  await fixtures('roberta-style', roberta(path.join(tokDir, 'gpt2-bpe')), src, items, pairs);
  codepointTables();
}
module.exports = { hf, gpt2, roberta };
if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
