// The page's React (UMD global) as the ES module "react" (named in the import map).
const React = globalThis.React;
export default React;
export const {
  createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState,
} = React;
