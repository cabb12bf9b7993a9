// Every table of the metal-api database; drizzle-kit reads this barrel.

export * from "./audit.js";
export * from "./changes.js";
export * from "./console.js";
export * from "./filesystem-layouts.js";
export * from "./images.js";
export * from "./machines.js";
export * from "./networks.js";
export * from "./partitions.js";
export * from "./replicas.js";
export * from "./sign-in-proofs.js";
export * from "./size-image-constraints.js";
export * from "./sizes.js";
export * from "./tokens.js";
