import { describe, expect, it } from 'vitest';
import { updateOvmsConfig } from './ovms-config.ts';
import { defaultTritonConfig, setTritonVersionPolicy } from './triton-config.ts';

describe('updateOvmsConfig', () => {
  it('creates the file when there is none', () => {
    expect(JSON.parse(updateOvmsConfig(null, 'c.json', [{ name: 'm', basePath: '/models/m', version: 3 }]))).toEqual({
      model_config_list: [{ config: { name: 'm', base_path: '/models/m', model_version_policy: { specific: { versions: [3] } } } }],
    });
  });

  it('changes only base_path and the policy of managed models; other models and keys stay', () => {
    const before = JSON.stringify({
      model_config_list: [
        { config: { name: 'face', base_path: '/other/face', model_version_policy: { latest: { num_versions: 2 } } } },
        { config: { name: 'm', base_path: '/old', batch_size: '4', model_version_policy: { all: {} }, plugin_config: { NUM_STREAMS: '1' } }, extra: true },
      ],
      mediapipe_config_list: [{ name: 'graph' }],
    });
    const after = JSON.parse(updateOvmsConfig(before, 'c.json', [{ name: 'm', basePath: '/models/m', version: 7 }]));
    expect(after.mediapipe_config_list).toEqual([{ name: 'graph' }]);
    expect(after.model_config_list[0]).toEqual({ config: { name: 'face', base_path: '/other/face', model_version_policy: { latest: { num_versions: 2 } } } });
    expect(after.model_config_list[1]).toEqual({ config: { name: 'm', base_path: '/models/m', batch_size: '4', model_version_policy: { specific: { versions: [7] } }, plugin_config: { NUM_STREAMS: '1' } }, extra: true });
  });

  it('refuses a file it cannot keep, naming it, rather than overwriting the operator\'s settings', () => {
    expect(() => updateOvmsConfig('{"model_config_list": [', '/models/config.json', [])).toThrow(/\/models\/config\.json: not valid JSON/);
    expect(() => updateOvmsConfig('[1]', 'c.json', [])).toThrow(/must be a JSON object/);
    expect(() => updateOvmsConfig('{"model_config_list": {}}', 'c.json', [])).toThrow(/model_config_list must be a list/);
  });
});

describe('setTritonVersionPolicy', () => {
  it('replaces the top-level version_policy in any of its spellings, keeping everything else byte for byte', () => {
    const text = [
      'name: "yolo"  # the detector',
      'backend: "onnxruntime"',
      'version_policy { latest { num_versions: 2 } }',
      'input [ { name: "version_policy" data_type: TYPE_FP32 dims: [ 1, 4 ] } ]',
      'parameters { key: "k" value: { string_value: "version_policy: { all {} }" } }',
      'version_policy: < all: < > >;',
      '',
    ].join('\n');
    expect(setTritonVersionPolicy(text, 12, 'c.pbtxt')).toBe([
      'name: "yolo"  # the detector',
      'backend: "onnxruntime"',
      'input [ { name: "version_policy" data_type: TYPE_FP32 dims: [ 1, 4 ] } ]',
      'parameters { key: "k" value: { string_value: "version_policy: { all {} }" } }',
      'version_policy: { specific: { versions: [12] } }',
      '',
    ].join('\n'));
  });

  it('leaves a nested version_policy-like name alone and appends to a file without one', () => {
    expect(setTritonVersionPolicy('name: "m"\nsequence_batching { version_policy_x: 1 }', 1, 'c')).toBe('name: "m"\nsequence_batching { version_policy_x: 1 }\nversion_policy: { specific: { versions: [1] } }\n');
    expect(setTritonVersionPolicy('', 5, 'c')).toBe('version_policy: { specific: { versions: [5] } }\n');
  });

  it('refuses a file it cannot read, naming it', () => {
    expect(() => setTritonVersionPolicy('name: "m"\ninput [ {', 1, '/srv/triton/m/config.pbtxt')).toThrow(/\/srv\/triton\/m\/config\.pbtxt: unclosed "\{" \(at offset 19\); it is left as it is/);
    expect(() => setTritonVersionPolicy('name: "m', 1, 'c')).toThrow(/unterminated string/);
    expect(() => setTritonVersionPolicy('version_policy: 3', 1, 'c')).toThrow(/version_policy must be a message/);
  });

  it('writes a minimal config for an ONNX model that came with none', () => {
    expect(defaultTritonConfig('yolo', ['model.onnx'])).toBe('name: "yolo"\nbackend: "onnxruntime"\n');
    expect(defaultTritonConfig('x', ['model.plan'])).toBe('name: "x"\n');
  });
});
