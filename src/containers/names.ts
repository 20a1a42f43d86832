import { randomInt } from 'node:crypto';
import { InvalidParameterError } from '../errors.js';

const VALID_NAME = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Strips the leading "/" and checks Docker's name rule. */
export function validateContainerName(name: string): string {
  if (!VALID_NAME.test(name)) {
    throw new InvalidParameterError(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
  return name.replace(/^\//, '');
}

const ADJECTIVES = [
  'admiring', 'adoring', 'agitated', 'amazing', 'angry', 'awesome', 'beautiful', 'blissful', 'bold', 'brave',
  'busy', 'charming', 'clever', 'compassionate', 'competent', 'confident', 'cool', 'cranky', 'crazy', 'dazzling',
  'determined', 'distracted', 'dreamy', 'eager', 'ecstatic', 'elastic', 'elated', 'elegant', 'eloquent', 'epic',
  'exciting', 'fervent', 'festive', 'flamboyant', 'focused', 'friendly', 'frosty', 'funny', 'gallant', 'gifted',
  'goofy', 'gracious', 'great', 'happy', 'hardcore', 'heuristic', 'hopeful', 'hungry', 'infallible', 'inspiring',
  'intelligent', 'interesting', 'jolly', 'jovial', 'keen', 'kind', 'laughing', 'loving', 'lucid', 'magical',
  'modest', 'musing', 'mystifying', 'naughty', 'nervous', 'nice', 'nifty', 'nostalgic', 'objective', 'optimistic',
  'peaceful', 'pedantic', 'pensive', 'practical', 'priceless', 'quirky', 'quizzical', 'recursing', 'relaxed',
  'reverent', 'romantic', 'sad', 'serene', 'sharp', 'silly', 'sleepy', 'stoic', 'strange', 'stupefied', 'suspicious',
  'sweet', 'tender', 'thirsty', 'trusting', 'unruffled', 'upbeat', 'vibrant', 'vigilant', 'vigorous', 'wizardly',
  'wonderful', 'xenodochial', 'youthful', 'zealous', 'zen',
];

const SURNAMES = [
  'agnesi', 'albattani', 'allen', 'archimedes', 'ardinghelli', 'babbage', 'banach', 'bardeen', 'bartik', 'bassi',
  'bell', 'bhabha', 'blackwell', 'bohr', 'booth', 'borg', 'bose', 'brahmagupta', 'brattain', 'burnell', 'cannon',
  'carson', 'cerf', 'chandrasekhar', 'chaplygin', 'chebyshev', 'clarke', 'colden', 'cori', 'curie', 'darwin',
  'davinci', 'dijkstra', 'dirac', 'einstein', 'elbakyan', 'elion', 'engelbart', 'euclid', 'euler', 'faraday',
  'fermat', 'fermi', 'feynman', 'franklin', 'galileo', 'gauss', 'germain', 'goldberg', 'goodall', 'hamilton',
  'hawking', 'heisenberg', 'hellman', 'hertz', 'hodgkin', 'hofstadter', 'hopper', 'hypatia', 'jackson', 'jang',
  'johnson', 'kalam', 'keldysh', 'kepler', 'khorana', 'knuth', 'kowalevski', 'lalande', 'lamarr', 'lamport',
  'leakey', 'leavitt', 'lehmann', 'lovelace', 'lumiere', 'mahavira', 'margulis', 'maxwell', 'mayer', 'mccarthy',
  'mcclintock', 'meitner', 'mendel', 'merkle', 'minsky', 'mirzakhani', 'morse', 'napier', 'nash', 'neumann',
  'newton', 'nobel', 'noether', 'pascal', 'pasteur', 'payne', 'perlman', 'pike', 'poincare', 'ptolemy', 'raman',
  'ramanujan', 'ride', 'ritchie', 'rosalind', 'sammet', 'shannon', 'shockley', 'sinoussi', 'stonebraker', 'swanson',
  'tesla', 'thompson', 'torvalds', 'turing', 'varahamihira', 'visvesvaraya', 'volhard', 'wescoff', 'wiles',
  'williams', 'wing', 'wozniak', 'wright', 'yalow', 'yonath',
];

/** Docker-style generated name, e.g. "focused_turing"; retry appends a digit, as dockerd does. */
export function generateContainerName(retry = 0): string {
  const pick = <T>(a: readonly T[]): T => a[randomInt(a.length)] as T;
  const name = `${pick(ADJECTIVES)}_${pick(SURNAMES)}`;
  return retry > 0 ? `${name}${randomInt(10)}` : name;
}
