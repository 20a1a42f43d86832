import { describe, expect, it } from 'vitest';
import { Filters } from '../../../src/util/filters.js';
import { InvalidParameterError } from '../../../src/errors.js';

describe('Docker filters parameter', () => {
  it('reads the map form and the legacy list form', () => {
    const a = Filters.parse('{"name":{"web":true,"db":true},"status":{"x":false}}');
    expect(a.get('name')).toEqual(['web', 'db']);
    expect(a.has('status')).toBe(false);
    const b = Filters.parse('{"label":["a=b","c"]}');
    expect(b.get('label')).toEqual(['a=b', 'c']);
  });

  it('matches labels by key and by key=value', () => {
    const f = Filters.parse('{"label":{"a=b":true,"c":true}}');
    expect(f.matchesLabels({ a: 'b', c: '' })).toBe(true);
    expect(f.matchesLabels({ a: 'x', c: '' })).toBe(false);
    expect(f.matchesLabels({ a: 'b' })).toBe(false);
  });

  it('refuses bad JSON and unknown keys with 400s', () => {
    expect(() => Filters.parse('{nope')).toThrow(InvalidParameterError);
    expect(() => Filters.parse('{"bogus":{"x":true}}', ['name'])).toThrow("invalid filter 'bogus'");
  });

  it('parses boolean filters', () => {
    expect(Filters.parse('{"dangling":{"true":true}}').bool('dangling')).toBe(true);
    expect(Filters.parse('{"dangling":["false"]}').bool('dangling')).toBe(false);
    expect(Filters.empty.bool('dangling')).toBeUndefined();
    expect(() => Filters.parse('{"dangling":["maybe"]}').bool('dangling')).toThrow(InvalidParameterError);
  });
});
