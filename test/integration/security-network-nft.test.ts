import { securityNetworkSuite } from './security-network-suite.js';

securityNetworkSuite('nft');
