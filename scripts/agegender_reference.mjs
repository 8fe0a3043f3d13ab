// Reference run of the original face-api.js AgeGenderNet (tfjs, CPU backend) on raw RGB images,
// to check vision/models/agegender.onnx against it (tests/vision/test_agegender_export.py reads the
// numbers it prints; see vision/agegender_export.py for how the graph was rebuilt).
//
// Needs, in one folder: the unpacked npm tarball of @vladmandic/face-api@1.7.15 (as ./package) and
// `npm install @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0`.
//
// Usage: node scripts/agegender_reference.mjs FOLDER INPUTS.json > OUTPUTS.json
//   INPUTS.json: [{"file": "a.f32", "height": H, "width": W}, ...], each file H*W*3 float32 RGB 0..255.
//   Any H x W is padded to a square and resized to 112 by face-api's own toBatchTensor.
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';

const [folder, inputsPath] = process.argv.slice(2);
const require = createRequire(path.resolve(folder, 'package.json'));
const faceapi = require(path.resolve(folder, 'package/dist/face-api.node-wasm.js'));
const tf = faceapi.tf;
await tf.setBackend('cpu');
await tf.ready();

const modelDir = path.resolve(folder, 'package/model');
const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'age_gender_model-weights_manifest.json')));
const bin = fs.readFileSync(path.join(modelDir, 'age_gender_model.bin'));
const weightMap = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), manifest[0].weights);
const net = new faceapi.AgeGenderNet();
net.loadFromWeightMap(weightMap);

const inputs = JSON.parse(fs.readFileSync(inputsPath));
const results = [];
for (const item of inputs) {
  const raw = fs.readFileSync(path.resolve(path.dirname(inputsPath), item.file));
  const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const image = tf.tensor3d(values, [item.height, item.width, 3], 'float32');
  const out = net.forwardInput(await faceapi.toNetInput(image));
  results.push({ age: Array.from(out.age.dataSync())[0], gender: Array.from(out.gender.dataSync()) });
  tf.dispose([image, out.age, out.gender]);
}
process.stdout.write(JSON.stringify({ backend: tf.getBackend(), tfjs: tf.version_core, results }) + '\n');
