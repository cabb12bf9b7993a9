// Every table of the metal-api database; drizzle-kit reads this barrel.
export * from "./partitions.js";
export * from "./tokens.js";
export * from "./sizes.js";
export * from "./images.js";
export * from "./networks.js";
export * from "./machines.js";
export * from "./size-image-constraints.js";
export * from "./filesystem-layouts.js";
export * from "./console.js";
