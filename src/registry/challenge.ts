/** One challenge of a WWW-Authenticate header (RFC 7235): `Bearer realm="…",service="…",scope="…"`. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses WWW-Authenticate (possibly several headers, possibly several challenges per header). Scheme names are
 * lower-cased, parameter names too; quoted values are unescaped.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const out: Challenge[] = [];
  for (const h of Array.isArray(header) ? header : header !== undefined ? [header] : []) {
    let i = 0;
    const s = h;
    const skipWs = (): void => {
      while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    };
    const token = (): string => {
      const start = i;
      while (i < s.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(s[i] as string)) i++;
      return s.slice(start, i);
    };
    let current: Challenge | undefined;
    while (i < s.length) {
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      const save = i;
      const name = token();
      if (name === '') {
        i++;
        continue;
      }
      skipWs();
      if (s[i] === '=' && current) {
        i++;
        skipWs();
        let value = '';
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === '\\' && i + 1 < s.length) i++;
            value += s[i];
            i++;
          }
          i++;
        } else {
          const start = i;
          while (i < s.length && s[i] !== ',' && s[i] !== ' ') i++;
          value = s.slice(start, i);
        }
        current.params[name.toLowerCase()] = value;
        continue;
      }
      // A new challenge (the name was a scheme), unless it was a token68 value.
      if (s[i] === '=' && !current) {
        i = save;
        break;
      }
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}
